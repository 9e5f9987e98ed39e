"""A realistic mixed workload; analytics checked against counts computed from the events
themselves; then every service rebuilt from the log must reproduce its live tables exactly."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from parley_dev.carrier import call_in
from parley_dev.digest import digest, rows
from parley_dev.email_sandbox import Email
from parley_dev.rebuild import PROJECTIONS, rebuild
from parley_shared.db import create_pool
from parley_shared.events import (
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
    decode,
)
from parley_shared.keyring import Keyring
from parley_shared.keywords import keyword_of
from parley_shared.status import fold_statuses
from tests.e2e.conftest import BOT_SMS, PUBLIC, Parley, eventually
from tests.helpers import read_topic

SMS = ["+15550300001", "+15550300002", "+15550300003"]
WHATSAPP = ["whatsapp:+15550300004", "whatsapp:+15550300005"]
TELNYX_NUMBER, TELNYX_PARTICIPANT = "+15550009999", "+15550300006"


async def run_workload(parley: Parley) -> int:
    """Returns how many replies Twilio should have been asked to send."""
    assert parley.ai is not None
    settings = {"changed_by": "Ana", "system_prompt": "Be brief.", "history_turns": 4}
    changed = await parley.ai.put(f"/v1/numbers/{BOT_SMS}/ai-settings", json=settings)
    assert changed.status_code == 200, changed.text
    # Tenants and tokens are rebuilt from the log like everything else.
    tenant = await parley.api("/v1/tenants", "POST", json={"name": "Acme", "numbers": [BOT_SMS]})
    await parley.api(f"/v1/tenants/{tenant['id']}", "PUT", json={"name": "Acme Ltd"})
    token = await parley.api(f"/v1/tenants/{tenant['id']}/tokens", "POST", json={"scope": "read"})
    await parley.api(f"/v1/tenants/{tenant['id']}/tokens/{token['id']}", "DELETE")
    for number in SMS + WHATSAPP:
        await parley.text(number, f"Hi, this is {number}")
    repeated = await parley.text(SMS[0], "Do you deliver on Sundays?")
    await parley.post_inbound(repeated)  # Twilio retried
    await parley.post_inbound(repeated)
    await parley.text(
        WHATSAPP[0],
        "Here is a photo",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/m/1",
        MediaContentType0="image/jpeg",
    )
    await eventually(lambda: _sent_at_least(parley, 7), timeout_s=30)

    parley.openai.failures = [(500, None)] * 3  # this one falls back...
    parley.twilio.lifecycle = ["sent"]  # ...and is never delivered
    await parley.text(SMS[1], "Can you hear me?")
    await eventually(lambda: _sent_at_least(parley, 8), timeout_s=30)
    fallback = parley.twilio.for_number(SMS[1])[-1]
    await asyncio.sleep(0.3)  # let the sandbox report "sent" first
    await parley.status(fallback.sid, SMS[1], "undelivered", ErrorCode="30003")
    parley.twilio.lifecycle = ["sent", "delivered"]

    await parley.text(SMS[2], "STOP")
    await eventually(lambda: _opted_out(parley, SMS[2]))
    await parley.text(SMS[2], "one more question")  # answered, but never sent
    await parley.text(SMS[2], "START")

    # Status callbacks for a WhatsApp reply, shuffled and repeated.
    [whatsapp_reply, *_] = parley.twilio.for_number(WHATSAPP[1])
    for status in ["read", "sent", "delivered", "sent", "read"]:
        await parley.status(whatsapp_reply.sid, WHATSAPP[1], status)

    # A person takes one conversation over, writes, and hands it back; a participant asks
    # for a person. Neither the takeover's message nor the request gets an AI reply.
    [taken] = await parley.conversations_of(SMS[0])
    path = f"/v1/conversations/{taken['id']}"
    await parley.api(f"{path}/takeover", method="POST", json={"agent": "Ana"})
    await parley.text(SMS[0], "Am I talking to a person?")
    written = await parley.conversation.post(
        f"{path}/messages", json={"agent": "Ana", "body": "Yes, Ana here."}
    )
    assert written.status_code == 202, written.text
    await eventually(lambda: _sent_at_least(parley, 9), timeout_s=30)
    await parley.api(f"{path}/handback", method="POST", json={"agent": "Ana"})
    await parley.text(SMS[1], "operator")
    # A WhatsApp template sent by an operator.
    [whatsapp] = await parley.conversations_of(WHATSAPP[1])
    template = {"content_sid": "HX" + "0" * 32, "variables": {"1": "Ana"}}
    written = await parley.conversation.post(
        f"/v1/conversations/{whatsapp['id']}/messages", json={"agent": "Ana", "template": template}
    )
    assert written.status_code == 202, written.text
    await eventually(lambda: _sent_at_least(parley, 10), timeout_s=30)

    [conversation] = await parley.conversations_of(WHATSAPP[0])
    await parley.api(f"/v1/conversations/{conversation['id']}/close", method="POST")
    await parley.text(WHATSAPP[0], "A new question after the close")
    await eventually(lambda: _sent_at_least(parley, 11), timeout_s=30)

    # Calls join their callers' threads (one answered, its callback repeated; one missed);
    # an email opens a thread of its own.
    answered = "CA" + "c1" * 16
    for _ in range(2):
        await call_in(
            parley.twilio, SMS[1], BOT_SMS, PUBLIC, how="answered", seconds=42, sid=answered
        )
    await call_in(parley.twilio, SMS[2], BOT_SMS, PUBLIC, how="missed")
    returns = Email("Pat <pat@mail.example>", "help@shop.example", "Returns", "How to return?")
    emailed = await parley.email.post(parley.gateway + "/webhooks/email/inbound", returns)
    assert emailed.status_code == 200, emailed.text

    # A participant is erased (their replies, template and statuses are on the log under
    # the deleted key) and writes again under a new one: a rebuild forgets them the same.
    erased = await parley.api("/v1/participants/erase", "POST", json={"participant": WHATSAPP[1]})
    assert len(erased["subjects"]) == 1
    await parley.text(WHATSAPP[1], "Me again, after the erasure")
    await eventually(lambda: _sent_at_least(parley, 12), timeout_s=30)

    # Acme keeps messages for a day: a sweep as of a day later reaches its SMS conversations
    # (callbacks may still come for them), and one participant writes after it.
    await parley.api(
        f"/v1/tenants/{tenant['id']}",
        "PUT",
        json={"name": "Acme Ltd", "numbers": [BOT_SMS], "retention_days": 1},
    )
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    swept = await parley.api("/v1/retention/sweep", "POST", json={"as_of": later})
    assert [s["conversations"] for s in swept] == [len(SMS)]
    await parley.text(SMS[0], "Still there after the retention?")
    await eventually(lambda: _sent_at_least(parley, 13), timeout_s=30)

    # A participant of a Telnyx number: answered through Telnyx, delivered by its webhooks.
    assert await parley.telnyx.text(TELNYX_PARTICIPANT, TELNYX_NUMBER, "Hello via Telnyx") == 200
    await eventually(lambda: _telnyx_delivered(parley), timeout_s=30)
    return 13


async def _telnyx_delivered(parley: Parley) -> bool:
    return ("message.finalized", 200) in parley.telnyx.webhooks


async def _sent_at_least(parley: Parley, n: int) -> bool:
    return len(parley.twilio.sent) >= n


async def _opted_out(parley: Parley, number: str) -> bool:
    return bool((await parley.conversations_of(number))[0]["opted_out"])


async def events_of(parley: Parley, topic: str) -> list[Envelope]:
    """Every distinct event of a topic, straight from the broker, opened with the keyring."""
    records = await read_topic(parley.bus, topic, expect=10_000, timeout_s=3)
    unique: dict[uuid.UUID, Envelope] = {}
    for record in records:
        event = decode(record.value or b"")
        unique.setdefault(event.event_id, event)
    pool = await create_pool(parley.database)
    try:
        return await Keyring(pool).open(list(unique.values()))
    finally:
        await pool.close()


async def settled_digests(parley: Parley) -> dict[str, dict[str, tuple[int, str]]]:
    """Digests once every service has stopped changing (two equal readings in a row)."""
    pool = await create_pool(parley.database)
    try:
        previous: dict[str, dict[str, tuple[int, str]]] | None = None
        for _ in range(60):
            current = {s: await digest(pool, s) for s in PROJECTIONS}
            pending = await pool.fetchval(
                "SELECT (SELECT count(*) FROM ai_inbox WHERE state = 'pending') + "
                "(SELECT count(*) FROM sender_outbound WHERE state IN ('pending', 'sending')) "
                "+ (SELECT count(*) FROM ai_outbox) + (SELECT count(*) FROM sender_outbox)"
            )
            if current == previous and pending == 0:
                return current
            previous = current
            await asyncio.sleep(1.0)
        raise AssertionError("services did not settle")
    finally:
        await pool.close()


async def test_analytics_match_the_log_and_a_rebuild_reproduces_every_service(
    parley: Parley,
) -> None:
    expected_sends = await run_workload(parley)
    live = await settled_digests(parley)
    assert len(parley.twilio.sent) == expected_sends

    received = [
        e
        for e in await events_of(parley, "message.received")
        if isinstance(e.payload, MessageReceived)
    ]
    replies = [
        e
        for e in await events_of(parley, "reply.generated")
        if isinstance(e.payload, ReplyGenerated)
    ]
    sent = [
        e for e in await events_of(parley, "message.sent") if isinstance(e.payload, MessageSent)
    ]
    statuses = [
        e for e in await events_of(parley, "status.updated") if isinstance(e.payload, StatusUpdated)
    ]
    await check_analytics(parley, received, replies, sent, statuses)

    for service in PROJECTIONS:
        schema = f"{service}_rebuilt"
        await rebuild(
            service,
            database_url=parley.database,
            bus=parley.bus,
            schema=schema,
            group_id=f"rebuild-{uuid.uuid4().hex[:8]}",
            out=None,
        )
        pool = await create_pool(parley.database, schema=schema)
        live_pool = await create_pool(parley.database)
        try:
            rebuilt = await digest(pool, service)
            if rebuilt != live[service]:
                differing = [t for t in live[service] if rebuilt.get(t) != live[service][t]]
                details = {
                    t: (
                        sorted(set(await rows(live_pool, t)) - set(await rows(pool, t))),
                        sorted(set(await rows(pool, t)) - set(await rows(live_pool, t))),
                    )
                    for t in differing
                }
                raise AssertionError(f"{service} differs after rebuild: {details}")
        finally:
            await pool.close()
            await live_pool.close()


async def check_analytics(
    parley: Parley,
    received: list[Envelope],
    replies: list[Envelope],
    sent: list[Envelope],
    statuses: list[Envelope],
) -> None:
    def payloads(events: list[Envelope]) -> list[Any]:
        return [e.payload for e in events]

    inbound: list[MessageReceived] = payloads(received)
    accepted = [p for p in payloads(sent) if p.message_sid]
    stats = (await parley.analytics.get("/v1/stats")).json()
    assert stats["messages"] == {"inbound": len(inbound), "outbound": len(accepted)}
    assert stats["participants"] == len({p.participant for p in inbound})
    assert stats["opt_outs"] == sum(keyword_of(p.body) == "opt_out" for p in inbound)
    # One conversation per participant, plus the one opened after the close.
    assert stats["conversations"] == {
        "total": len(SMS) + len(WHATSAPP) + 1 + 1,  # and the Telnyx one
        "open": len(SMS) + len(WHATSAPP) + 1,
    }

    contacts = (await parley.analytics.get("/v1/contacts")).json()["channels"]
    assert [
        (c["channel"], c["total"], c["completed"], c["missed"], c["talk_seconds"]) for c in contacts
    ] == [
        ("email", 1, 0, 0, 0),
        ("voice", 2, 1, 1, 42),
    ]

    whatsapp_only = (await parley.analytics.get("/v1/stats", params={"channel": "whatsapp"})).json()
    assert whatsapp_only["messages"]["inbound"] == sum(p.channel == "whatsapp" for p in inbound)

    usage = (await parley.analytics.get("/v1/ai-usage")).json()
    sources = Counter(p.source for p in payloads(replies))
    assert usage["totals"]["replies"] == len(replies)
    assert (usage["totals"]["ai"], usage["totals"]["fallback"]) == (
        sources["ai"],
        sources["fallback"],
    )
    assert usage["totals"]["prompt_tokens"] == sum(p.prompt_tokens for p in payloads(replies))

    seen: dict[str, list[tuple[Any, str]]] = {}
    for event in statuses:
        seen.setdefault(event.payload.message_sid, []).append(  # type: ignore[attr-defined]
            (event.occurred_at, event.payload.status)
        )  # type: ignore[attr-defined]
    finals = Counter(
        fold_statuses(p.status, [s for _, s in sorted(seen.get(p.message_sid or "", []))])
        for p in payloads(sent)
    )
    delivery = (await parley.analytics.get("/v1/delivery")).json()
    assert delivery["funnel"]["attempted"] == len(sent)
    assert delivery["funnel"]["sent"] == len(accepted)
    assert delivery["funnel"]["read"] == finals["read"]
    assert delivery["funnel"]["delivered"] == finals["delivered"] + finals["read"]
    assert delivery["funnel"]["undelivered"] == finals["undelivered"]
    assert delivery["funnel"]["failed"] == finals["failed"] + finals["canceled"]
    assert {"error_code": 30003, "count": 1} in delivery["top_error_codes"]

    times = (await parley.analytics.get("/v1/response-times")).json()
    # Response times are of replies to a message; an operator's own message answers none.
    assert times["reply"]["count"] == sum(p.in_reply_to is not None for p in accepted)
    assert len(accepted) - times["reply"]["count"] == 2
    assert times["ai"]["count"] == sources["ai"]
    assert times["reply"]["p50_ms"] <= times["reply"]["p99_ms"]

    engagement = (
        await parley.analytics.get("/v1/engagement", params={"granularity": "hour"})
    ).json()
    assert sum(b["messages_in"] for b in engagement["buckets"]) == len(inbound)
    assert engagement["active_participants"]["last_24h"] == stats["participants"]

    export = await parley.analytics.get("/v1/export/messages.csv")
    header, *exported = list(csv.reader(io.StringIO(export.text)))
    assert header[:3] == ["id", "direction", "occurred_at"]
    assert Counter(row[1] for row in exported) == {
        "inbound": len(inbound),
        # Replies, and the operators' messages (sent, so they have an outcome).
        "outbound": len({e.event_id for e in replies} | {p.reply_event_id for p in payloads(sent)}),
    }
