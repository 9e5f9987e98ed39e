"""A participant asks to be forgotten: their keys are deleted and every service forgets what it
had opened (history, the model's context, analytics' facts), while counts stay; when they
write again they are a participant like any other, under a new key."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import BOT_SMS, Parley, eventually

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


async def test_a_tenant_erases_only_a_participant_of_its_own(parley: Parley) -> None:
    admin = parley.conversation
    acme = await parley.api("/v1/tenants", "POST", json={"name": "Acme", "numbers": [BOT_SMS]})
    tokens = [
        await parley.api(f"/v1/tenants/{acme['id']}/tokens", "POST", json={"scope": scope})
        for scope in ("write", "read")
    ]
    both, only = "+15550177002", "+15550177003"
    await parley.text(both, "hi on SMS")  # to Acme's number
    await parley.text(f"whatsapp:{both}", "hi on WhatsApp")  # to a number of no tenant's
    await parley.text(only, "hi")
    for number in (both, f"whatsapp:{both}", only):
        await eventually(lambda n=number: parley.conversations_of(n))  # type: ignore[misc]
    writer, reader = (as_token(admin, t["token"]) for t in tokens)
    async with writer, reader:
        await eventually(lambda: works(writer))
        await eventually(lambda: works(reader))
        refused = await reader.post("/v1/participants/erase", json={"participant": only})
        assert refused.status_code == 403, refused.text
        # The key is the number's, and it also wrote to a number that is not Acme's.
        shared = await writer.post("/v1/participants/erase", json={"participant": both})
        assert shared.status_code == 409, shared.text
        own = await writer.post("/v1/participants/erase", json={"participant": only})
        assert own.status_code == 202, own.text


def as_token(client: httpx.AsyncClient, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=str(client.base_url), timeout=20, headers={"Authorization": f"Bearer {token}"}
    )


async def works(client: httpx.AsyncClient) -> bool | None:
    """A new token works once the service has read it from the log."""
    return (await client.get("/v1/me")).status_code == 200 or None
