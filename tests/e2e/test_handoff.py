"""People in the loop: an operator takes a conversation over from the AI, writes to the
participant through the sender, and hands it back; a participant can ask for a person."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.conftest import BOT_SMS, Parley, eventually
from tests.e2e.test_loop import replies_to


async def conversation_of(parley: Parley, number: str) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        found = await parley.conversations_of(number)
        return found[0] if len(found) == 1 else None

    return await eventually(one)


async def flagged(parley: Parley, number: str) -> dict[str, Any]:
    """The conversation once it shows the participant asked for a person."""

    async def requested() -> dict[str, Any] | None:
        conversation = await conversation_of(parley, number)
        return conversation if conversation["handoff"] == "requested" else None

    return await eventually(requested)


async def test_takeover_pauses_the_ai_an_agent_writes_and_hand_back_resumes_it(
    parley: Parley,
) -> None:
    number = "+15550120001"
    start = datetime.now(UTC).isoformat()
    await parley.text(number, "hello")
    await replies_to(parley, number, 1)
    conversation = await conversation_of(parley, number)
    assert conversation["handoff"] == "ai"
    path = f"/v1/conversations/{conversation['id']}"

    taken = await parley.api(f"{path}/takeover", method="POST", json={"agent": "Ana"})
    assert (taken["handoff"], taken["handoff_agent"]) == ("agent", "Ana")
    again = await parley.conversation.post(f"{path}/takeover", json={"agent": "Bo"})
    assert again.status_code == 409, again.text

    await parley.text(number, "is anyone there?")
    response = await parley.conversation.post(
        f"{path}/messages",
        json={"agent": "Ana", "body": "Hi, Ana here.", "media_urls": ["https://example.com/a.jpg"]},
    )
    assert response.status_code == 202, response.text
    requested = response.json()
    [_, by_agent] = await replies_to(parley, number, 2)
    assert (by_agent.body, by_agent.from_) == ("Hi, Ana here.", BOT_SMS)
    assert by_agent.media_urls == ("https://example.com/a.jpg",)

    async def tracked() -> list[dict[str, Any]] | None:
        history = await parley.history_of(number)
        mine = [m for m in history if m["id"] == requested["id"]]
        return history if mine and mine[0]["status"] == "delivered" else None

    history = await eventually(tracked)
    agent_message = next(m for m in history if m["id"] == requested["id"])
    assert (agent_message["agent"], agent_message["ai"]) == ("Ana", None)
    assert agent_message["message_sid"] == by_agent.sid
    assert [m["body"] for m in history if m["direction"] == "inbound"] == [
        "hello",
        "is anyone there?",
    ]
    # The AI answered nothing while Ana had the conversation.
    await asyncio.sleep(1.0)
    assert len(parley.twilio.for_number(number)) == 2

    async def counted() -> dict[str, Any] | None:
        figures = (await parley.analytics.get("/v1/handoffs", params={"from": start})).json()
        return figures if figures["first_human_reply"]["count"] == 1 else None

    figures = await eventually(counted)
    assert (figures["takeovers"], figures["handed_off_conversations"]) == (1, 1)
    assert (figures["conversations"], figures["handed_off_share"]) == (1, 1.0)
    assert figures["requests"] == 0
    assert figures["first_human_reply"]["p50_ms"] > 0

    back = await parley.api(f"{path}/handback", method="POST", json={"agent": "Ana"})
    assert back["handoff"] == "ai"
    timeline = await parley.api(f"{path}/handoffs")
    assert [(h["action"], h["agent"]) for h in timeline] == [
        ("taken_over", "Ana"),
        ("handed_back", "Ana"),
    ]
    await parley.text(number, "thanks, one more question")
    sent = await replies_to(parley, number, 3)
    assert sent[2].body == "AI says: thanks, one more question"
    assert len(parley.twilio.for_number(number)) == 3


async def test_a_takeover_during_the_model_call_means_no_ai_reply(parley: Parley) -> None:
    number = "+15550120002"
    await parley.text(number, "first")
    await replies_to(parley, number, 1)
    conversation = await conversation_of(parley, number)
    parley.openai.delays = {"slow": 2.0}
    await parley.text(number, "slow question")
    await asyncio.sleep(0.5)  # the model is answering it now
    await parley.api(
        f"/v1/conversations/{conversation['id']}/takeover", method="POST", json={"agent": "Cy"}
    )
    await asyncio.sleep(3.0)
    assert [m.body for m in parley.twilio.for_number(number)] == ["AI says: first"]


async def test_asking_for_a_person_flags_the_conversation_and_pauses_the_ai(
    parley: Parley,
) -> None:
    number = "+15550120003"
    start = datetime.now(UTC).isoformat()
    await parley.text(number, "hello")
    await replies_to(parley, number, 1)
    await parley.text(number, "Human!")
    await parley.text(number, "please?")

    conversation = await flagged(parley, number)
    waiting = await parley.api("/v1/conversations", params={"handoff": "requested"})
    assert conversation["id"] in [c["id"] for c in waiting["items"]]
    await eventually(lambda: _inbound_count(parley, number, 3))
    await asyncio.sleep(1.0)
    assert len(parley.twilio.for_number(number)) == 1
    # A person answers, then gives the conversation back: the AI answers again.
    path = f"/v1/conversations/{conversation['id']}"
    await parley.api(f"{path}/takeover", method="POST", json={"agent": "Di"})
    await parley.api(f"{path}/handback", method="POST", json={"agent": "Di"})
    await parley.text(number, "ok bot")
    sent = await replies_to(parley, number, 2)
    assert sent[1].body == "AI says: ok bot"
    timeline = await parley.api(f"{path}/handoffs")
    assert [h["action"] for h in timeline] == ["requested", "taken_over", "handed_back"]
    figures = (await parley.analytics.get("/v1/handoffs", params={"from": start})).json()
    # Taken over and handed back without writing: no first human reply to time.
    assert (figures["requests"], figures["takeovers"]) == (1, 1)
    assert figures["first_human_reply"] == {"count": 0, "p50_ms": None, "p95_ms": None}


async def _inbound_count(parley: Parley, number: str, count: int) -> bool:
    history = await parley.history_of(number)
    return len([m for m in history if m["direction"] == "inbound"]) >= count


async def test_agent_messages_are_refused_clearly(parley: Parley) -> None:
    number = "+15550120004"
    await parley.text(number, "hello")
    await replies_to(parley, number, 1)
    conversation = await conversation_of(parley, number)
    path = f"/v1/conversations/{conversation['id']}"
    empty = await parley.conversation.post(f"{path}/messages", json={"agent": "Ed", "body": " "})
    assert empty.status_code == 422
    nobody = await parley.conversation.post(f"{path}/messages", json={"body": "hi"})
    assert nobody.status_code == 422
    for bad in ({"agent": "Ed", "body": "a\u0000b"}, {"agent": "E\u0000d", "body": "hi"}):
        refused = await parley.conversation.post(f"{path}/messages", json=bad)
        assert refused.status_code == 422, refused.text
    back = await parley.conversation.post(f"{path}/handback", json={"agent": "Ed"})
    assert back.status_code == 409
    await parley.api(f"{path}/close", method="POST")
    closed = await parley.conversation.post(f"{path}/messages", json={"agent": "Ed", "body": "x"})
    assert closed.status_code == 409
    assert "closed" in closed.json()["detail"]
    missing = await parley.conversation.post(
        "/v1/conversations/00000000-0000-0000-0000-000000000000/messages",
        json={"agent": "Ed", "body": "x"},
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("parley", [{"handoff_keywords": "hilfe, Mensch"}], indirect=True)
async def test_more_words_for_asking_for_a_person_can_be_configured(parley: Parley) -> None:
    number = "+15550120005"
    await parley.text(number, "Hilfe!")

    await flagged(parley, number)
    await parley.text(number, "human")  # the built-in words still count
    await asyncio.sleep(1.0)
    assert parley.twilio.for_number(number) == []
