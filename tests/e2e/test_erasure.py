"""A participant asks to be forgotten: their keys are deleted and every service forgets what it
had opened (history, the model's context, analytics' facts), while counts stay; when they
write again they are a participant like any other, under a new key."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Parley, eventually

NUMBER = "+15550177001"
SECRET = "my name is Ada Smith"


async def messages_of(parley: Parley, conversation_id: str) -> list[dict[str, Any]]:
    page = await parley.api(f"/v1/conversations/{conversation_id}/messages")
    return list(page["items"])


async def test_an_erased_participant_is_forgotten_everywhere_and_starts_afresh(
    parley: Parley,
) -> None:
    await parley.text(NUMBER, SECRET)

    async def answered() -> list[dict[str, Any]] | None:
        history = await parley.history_of(NUMBER)
        return history if len(history) == 2 and history[1]["status"] == "delivered" else None

    await eventually(answered)
    [conversation] = await parley.conversations_of(NUMBER)
    path = f"/v1/conversations/{conversation['id']}"
    await parley.api(f"{path}/takeover", method="POST", json={"agent": "Ana"})
    await parley.api(f"{path}/messages", method="POST", json={"agent": "Ana", "body": "Hi Ada"})
    await eventually(lambda: agent_wrote(parley, conversation["id"]))
    await parley.api(f"{path}/handback", method="POST", json={"agent": "Ana"})

    erased = await parley.api("/v1/participants/erase", "POST", json={"participant": NUMBER})
    assert len(erased["subjects"]) == 1

    async def forgotten() -> list[dict[str, Any]] | None:
        items = await messages_of(parley, conversation["id"])
        return items if all(m["body"] == "[erased]" for m in items) else None

    history = await eventually(forgotten)
    assert len(history) == 3  # the messages stay, with their times and statuses
    assert [m["status"] for m in history][1] == "delivered"
    gone = await parley.api(path)
    assert gone["participant"] == "[erased]"
    assert await parley.conversations_of(NUMBER) == []

    async def exported() -> str | None:
        csv = (await parley.analytics.get("/v1/export/messages.csv")).text
        return csv if "Ada Smith" not in csv and "[erased]" in csv else None

    csv = await eventually(exported)
    assert "5550177001" not in csv
    stats = (await parley.analytics.get("/v1/stats")).json()
    assert stats["messages"]["inbound"] == 1 and stats["participants"] == 1

    # Writing again: known by number again, answered, and the model never sees the old text.
    await parley.text(NUMBER, "hello again")

    async def answered_again() -> list[dict[str, Any]] | None:
        items = await messages_of(parley, conversation["id"])
        return items if any(m["body"] == "AI says: hello again" for m in items) else None

    await eventually(answered_again)
    [again] = await parley.conversations_of(NUMBER)
    assert again["id"] == conversation["id"]
    prompt = parley.openai.requests[-1]["messages"]
    assert all("Ada" not in str(m["content"]) for m in prompt)
    assert prompt[-1]["content"] == "hello again"
    # A second erasure takes the new key.
    second = await parley.api("/v1/participants/erase", "POST", json={"participant": NUMBER})
    assert second["subjects"] != erased["subjects"]


async def agent_wrote(parley: Parley, conversation_id: str) -> bool | None:
    items = await messages_of(parley, conversation_id)
    return any(m["body"] == "Hi Ada" for m in items) or None


async def test_erasure_is_refused_clearly(parley: Parley) -> None:
    unknown = await parley.conversation.post(
        "/v1/participants/erase", json={"participant": "+15550177999"}
    )
    assert unknown.status_code == 404, unknown.text
    malformed = await parley.conversation.post(
        "/v1/participants/erase", json={"participant": "Ada"}
    )
    assert malformed.status_code == 422, malformed.text
    anonymous = await parley.http.post(
        str(parley.conversation.base_url) + "/v1/participants/erase",
        json={"participant": NUMBER},
    )
    assert anonymous.status_code == 401, anonymous.text
