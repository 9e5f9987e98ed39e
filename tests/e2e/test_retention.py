"""A tenant keeps messages for N days: a sweep lists its conversations with older messages in
``retention.applied``, and every service forgets what they held (history, thread number, the
model's context, analytics' facts) while the figures stay; other tenants' stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import BOT_SMS, Parley, eventually
from tests.e2e.test_erasure import as_token, messages_of, works

KEPT = "whatsapp:+15550188002"  # writes to a number of no tenant's: no retention
EXPIRING = "+15550188001"
SECRET = "my account number is 4242"


async def test_a_tenants_retention_forgets_old_messages_everywhere(parley: Parley) -> None:
    acme = await parley.api(
        "/v1/tenants", "POST", json={"name": "Acme", "numbers": [BOT_SMS], "retention_days": 1}
    )
    assert acme["retention_days"] == 1
    await parley.text(EXPIRING, SECRET)
    await parley.text(KEPT, "keep this one")  # to BOT_WHATSAPP: no tenant's
    for number in (EXPIRING, KEPT):
        await eventually(lambda n=number: answered(parley, n))  # type: ignore[misc]
    [conversation] = await parley.conversations_of(EXPIRING)
    [kept] = await parley.conversations_of(KEPT)
    await eventually(lambda: exported_with(parley, SECRET))

    # Nothing is old enough yet.
    assert await parley.api("/v1/retention/sweep", "POST") == []
    # A day after these messages, before the next.
    later = datetime.now(UTC) + timedelta(days=1)
    swept = await parley.api("/v1/retention/sweep", "POST", json={"as_of": later.isoformat()})
    assert [(s["tenant_id"], s["conversations"]) for s in swept] == [(acme["id"], 1)]
    # Applied once: a second sweep finds nothing new.
    assert await parley.api("/v1/retention/sweep", "POST", json={"as_of": later.isoformat()}) == []

    async def forgotten() -> list[dict[str, Any]] | None:
        items = await messages_of(parley, conversation["id"])
        return items if all(m["body"] == "[erased]" for m in items) else None

    history = await eventually(forgotten)
    assert [m["status"] for m in history] == ["received", "delivered"]  # the figures stay
    thread = await parley.api(f"/v1/conversations/{conversation['id']}")
    assert thread["participant"] == "[erased]"
    assert [m["body"] for m in await messages_of(parley, kept["id"])] == [
        "keep this one",
        "AI says: keep this one",
    ]
    csv = await eventually(lambda: exported_without(parley, SECRET))
    assert "keep this one" in csv and "5550188001" not in csv
    stats = (await parley.analytics.get("/v1/stats")).json()
    assert stats["messages"]["inbound"] == 2 and stats["participants"] == 2

    # Writing again: known by number again, and the model never sees the forgotten text.
    await parley.text(EXPIRING, "hello again")
    await eventually(lambda: conversation_again(parley))
    prompt = parley.openai.requests[-1]["messages"]
    assert prompt[-1]["content"] == "hello again"
    assert all("4242" not in str(m["content"]) for m in prompt)


async def answered(parley: Parley, number: str) -> bool | None:
    history = await parley.history_of(number)
    return (len(history) == 2 and history[1]["status"] == "delivered") or None


async def exported_with(parley: Parley, text: str) -> bool | None:
    return text in (await parley.analytics.get("/v1/export/messages.csv")).text or None


async def exported_without(parley: Parley, text: str) -> str | None:
    csv = (await parley.analytics.get("/v1/export/messages.csv")).text
    return csv if text not in csv and "[erased]" in csv else None


async def conversation_again(parley: Parley) -> bool | None:
    history = await parley.history_of(EXPIRING)
    return any(m["body"] == "AI says: hello again" for m in history) or None


async def test_retention_is_the_admins_to_set_and_apply(parley: Parley) -> None:
    refused = await parley.conversation.post(
        "/v1/tenants", json={"name": "Acme", "numbers": [BOT_SMS], "retention_days": 0}
    )
    assert refused.status_code == 422, refused.text
    acme = await parley.api("/v1/tenants", "POST", json={"name": "Acme", "numbers": [BOT_SMS]})
    assert acme["retention_days"] is None
    naive = await parley.conversation.post(
        "/v1/retention/sweep", json={"as_of": "2030-01-01T00:00:00"}
    )
    assert naive.status_code == 422, naive.text
    # A century of retention before year 1 is no date: refused, not a 500.
    ancient = await parley.conversation.post(
        "/v1/retention/sweep", json={"as_of": "0001-01-02T00:00:00Z"}
    )
    assert ancient.status_code == 422, ancient.text
    token = await parley.api(f"/v1/tenants/{acme['id']}/tokens", "POST", json={"scope": "write"})
    async with as_token(parley.conversation, token["token"]) as writer:
        await eventually(lambda: works(writer))
        assert (await writer.post("/v1/retention/sweep")).status_code == 403
