"""Analytics tables: one fact row per message, and hourly aggregates the API reads.

Every aggregate is keyed by (hour, channel, our number), so any range and filter is a sum
over few rows. Facts whose parts come from different topics (a reply's text and model from
``reply.generated``, its Twilio SID from ``message.sent``, its delivery from
``status.updated``) are assembled in whatever order the topics deliver them; each derived
figure is counted once, when its last part arrives.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from parley_analytics.core import bin_of
from parley_shared.conversations import place_all, rewrite_thread
from parley_shared.db import Connection
from parley_shared.events import Envelope, MessageReceived, MessageSent, ReplyGenerated
from parley_shared.status import fold_statuses

SERVICE = "analytics"

SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics_facts (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    channel text NOT NULL,
    our_address text NOT NULL,
    participant text NOT NULL,
    direction text NOT NULL,
    occurred_at timestamptz NOT NULL,
    body text NOT NULL DEFAULT '',
    inbound_at timestamptz,
    sent_at timestamptz,
    delivered_at timestamptz,
    message_sid text UNIQUE,
    status text,
    error_code int,
    source text,
    model text,
    prompt_tokens int NOT NULL DEFAULT 0,
    completion_tokens int NOT NULL DEFAULT 0,
    ai_latency_ms int,
    segments int,
    counted_reply boolean NOT NULL DEFAULT false,
    counted_delivery boolean NOT NULL DEFAULT false,
    funnel_status text,
    funnel_error int
);
CREATE INDEX IF NOT EXISTS analytics_facts_time ON analytics_facts (occurred_at, id);
CREATE INDEX IF NOT EXISTS analytics_facts_inbound ON analytics_facts (conversation_key,
    occurred_at) WHERE direction = 'inbound';
CREATE TABLE IF NOT EXISTS analytics_hourly (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    messages_in bigint NOT NULL DEFAULT 0, messages_out bigint NOT NULL DEFAULT 0,
    opt_outs bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, channel, our_address)
);
CREATE TABLE IF NOT EXISTS analytics_active (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    participant text NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, participant)
);
CREATE TABLE IF NOT EXISTS analytics_latency (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    metric text NOT NULL, bin int NOT NULL, count bigint NOT NULL,
    -- whole milliseconds: an integer sum is the same whatever order events are added in
    sum_ms bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, metric, bin)
);
CREATE TABLE IF NOT EXISTS analytics_delivery (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    status text NOT NULL, error_code int NOT NULL, count bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, status, error_code)
);
CREATE TABLE IF NOT EXISTS analytics_ai (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    model text NOT NULL, source text NOT NULL, replies bigint NOT NULL,
    prompt_tokens bigint NOT NULL, completion_tokens bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, model, source)
);
CREATE TABLE IF NOT EXISTS analytics_statuses (
    message_sid text NOT NULL, status text NOT NULL, at timestamptz NOT NULL,
    error_code int, PRIMARY KEY (message_sid, status)
);
CREATE TABLE IF NOT EXISTS analytics_conversations (
    id uuid PRIMARY KEY, conversation_key text NOT NULL, channel text NOT NULL,
    our_address text NOT NULL, opened_at timestamptz NOT NULL, closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS analytics_conversations_key
    ON analytics_conversations (conversation_key, opened_at);
CREATE INDEX IF NOT EXISTS analytics_conversations_opened ON analytics_conversations (opened_at);
"""

HOUR = "date_trunc('hour', $1::timestamptz)"


async def bump_hourly(
    conn: Connection, at: datetime, channel: str, ours: str, column: str, by: int = 1
) -> None:
    assert column in ("messages_in", "messages_out", "opt_outs")
    await conn.execute(
        f"INSERT INTO analytics_hourly (bucket, channel, our_address, {column}) "
        f"VALUES ({HOUR}, $2, $3, $4) ON CONFLICT (bucket, channel, our_address) "
        f"DO UPDATE SET {column} = analytics_hourly.{column} + EXCLUDED.{column}",
        at,
        channel,
        ours,
        by,
    )


async def add_latency(
    conn: Connection, at: datetime, channel: str, ours: str, metric: str, ms: float
) -> None:
    await conn.execute(
        f"INSERT INTO analytics_latency VALUES ({HOUR}, $2, $3, $4, $5, 1, $6) "
        "ON CONFLICT (bucket, channel, our_address, metric, bin) DO UPDATE SET "
        "count = analytics_latency.count + 1, sum_ms = analytics_latency.sum_ms + $6",
        at,
        channel,
        ours,
        metric,
        bin_of(ms),
        round(ms),
    )


async def add_inbound(conn: Connection, event: Envelope, opt_out: bool) -> None:
    p = event.payload
    assert isinstance(p, MessageReceived)
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, message_sid, status) "
        "VALUES ($1, $2, $3, $4, $5, 'inbound', $6, $7, $8, 'received')",
        event.event_id,
        event.conversation_key,
        p.channel,
        p.our_address,
        p.participant,
        event.occurred_at,
        p.body,
        p.message_sid,
    )
    await bump_hourly(conn, event.occurred_at, p.channel, p.our_address, "messages_in")
    if opt_out:
        await bump_hourly(conn, event.occurred_at, p.channel, p.our_address, "opt_outs")
    await conn.execute(
        f"INSERT INTO analytics_active VALUES ({HOUR}, $2, $3, $4) ON CONFLICT DO NOTHING",
        event.occurred_at,
        p.channel,
        p.our_address,
        p.participant,
    )
    await _assign_conversation(
        conn, event.conversation_key, event.occurred_at, p.channel, p.our_address
    )


async def _assign_conversation(
    conn: Connection, key: str, at: datetime, channel: str, ours: str
) -> None:
    await place_all(
        conn,
        "analytics_conversations",
        [(key, at)],
        {key: {"channel": channel, "our_address": ours}},
    )


async def close_conversation(
    conn: Connection, conversation: UUID, key: str, at: datetime, channel: str, ours: str
) -> None:
    await conn.execute(
        "INSERT INTO analytics_conversations VALUES ($1, $2, $3, $4, $5, $5) "
        "ON CONFLICT (id) DO UPDATE SET closed_at = EXCLUDED.closed_at",
        conversation,
        key,
        channel,
        ours,
        at,
    )
    await _rewrite(conn, key, channel, ours)


async def reopen_conversation(conn: Connection, conversation: UUID) -> None:
    row = await conn.fetchrow(
        "UPDATE analytics_conversations SET closed_at = NULL WHERE id = $1 "
        "RETURNING conversation_key, channel, our_address",
        conversation,
    )
    if row is not None:
        await _rewrite(conn, row["conversation_key"], row["channel"], row["our_address"])


async def _rewrite(conn: Connection, key: str, channel: str, ours: str) -> None:
    """Conversations are counted from inbound messages only (a reply shares its inbound's)."""
    anchors = await conn.fetch(
        "SELECT occurred_at FROM analytics_facts WHERE conversation_key = $1 "
        "AND direction = 'inbound'",
        key,
    )
    await rewrite_thread(
        conn,
        "analytics_conversations",
        key,
        [row["occurred_at"] for row in anchors],
        {"channel": channel, "our_address": ours},
    )


async def add_reply(conn: Connection, event: Envelope) -> None:
    p = event.payload
    assert isinstance(p, ReplyGenerated)
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, inbound_at, source, model, prompt_tokens, "
        "completion_tokens, ai_latency_ms, segments) VALUES ($1, $2, $3, $4, $5, 'outbound', "
        "$6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO UPDATE SET "
        "occurred_at = EXCLUDED.occurred_at, inbound_at = EXCLUDED.inbound_at, "
        "source = EXCLUDED.source, model = EXCLUDED.model, "
        "prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,"
        " ai_latency_ms = EXCLUDED.ai_latency_ms, segments = EXCLUDED.segments",
        event.event_id,
        event.conversation_key,
        p.channel,
        p.our_address,
        p.participant,
        event.occurred_at,
        p.body,
        p.inbound_at,
        p.source,
        p.model or "unknown",
        p.prompt_tokens,
        p.completion_tokens,
        p.latency_ms,
        p.segments,
    )
    await conn.execute(
        f"INSERT INTO analytics_ai VALUES ({HOUR}, $2, $3, $4, $5, 1, $6, $7) "
        "ON CONFLICT (bucket, channel, our_address, model, source) DO UPDATE SET "
        "replies = analytics_ai.replies + 1, "
        "prompt_tokens = analytics_ai.prompt_tokens + EXCLUDED.prompt_tokens, "
        "completion_tokens = analytics_ai.completion_tokens + EXCLUDED.completion_tokens",
        p.inbound_at,
        p.channel,
        p.our_address,
        p.model or "unknown",
        p.source,
        p.prompt_tokens,
        p.completion_tokens,
    )
    if p.source == "ai":
        await add_latency(conn, p.inbound_at, p.channel, p.our_address, "ai", p.latency_ms)
    await settle_metrics(conn, event.event_id)


async def add_sent(conn: Connection, event: Envelope) -> None:
    p = event.payload
    assert isinstance(p, MessageSent)
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, sent_at, message_sid, status, error_code) VALUES "
        "($1, $2, $3, $4, $5, 'outbound', $6, $7, $6, $8, $9, $10) ON CONFLICT (id) DO UPDATE "
        "SET sent_at = EXCLUDED.sent_at, message_sid = EXCLUDED.message_sid, "
        "status = EXCLUDED.status, error_code = EXCLUDED.error_code",
        p.reply_event_id,
        event.conversation_key,
        p.channel,
        p.our_address,
        p.participant,
        event.occurred_at,
        p.body,
        p.message_sid,
        p.status,
        p.error_code,
    )
    if p.message_sid:
        await bump_hourly(conn, event.occurred_at, p.channel, p.our_address, "messages_out")
    await refresh_delivery(conn, p.reply_event_id)


async def add_status(
    conn: Connection, sid: str, status: str, at: datetime, error_code: int | None
) -> None:
    await conn.execute(
        "INSERT INTO analytics_statuses VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        sid,
        status,
        at,
        error_code,
    )
    fact = await conn.fetchval("SELECT id FROM analytics_facts WHERE message_sid = $1", sid)
    if fact is not None:
        await refresh_delivery(conn, fact)


async def refresh_delivery(conn: Connection, fact_id: UUID) -> None:
    """Move the message in the delivery funnel to its current status."""
    fact = await conn.fetchrow(
        "SELECT message_sid, status, error_code, sent_at, channel, our_address, funnel_status,"
        " funnel_error FROM analytics_facts WHERE id = $1",
        fact_id,
    )
    if fact is None or fact["sent_at"] is None:
        return
    seen = (
        await conn.fetch(
            "SELECT status, at, error_code FROM analytics_statuses WHERE message_sid = $1 "
            "ORDER BY at, status",
            fact["message_sid"],
        )
        if fact["message_sid"]
        else []
    )
    status = fold_statuses(fact["status"], (r["status"] for r in seen)) or "failed"
    error = next((r["error_code"] for r in seen if r["status"] == status), None)
    error = error if error is not None else fact["error_code"]
    delivered_at = min(
        (r["at"] for r in seen if r["status"] in ("delivered", "read")), default=None
    )
    funnel_error = error or 0
    if (fact["funnel_status"], fact["funnel_error"]) != (status, funnel_error):
        args = (fact["sent_at"], fact["channel"], fact["our_address"])
        if fact["funnel_status"] is not None:
            # A row that drops to zero goes, so the table does not depend on the path taken.
            key = (*args, fact["funnel_status"], fact["funnel_error"])
            match = (
                f"bucket = {HOUR} AND channel = $2 AND our_address = $3 AND status = $4 "
                "AND error_code = $5"
            )
            await conn.execute(
                f"UPDATE analytics_delivery SET count = count - 1 WHERE {match}", *key
            )
            await conn.execute(f"DELETE FROM analytics_delivery WHERE {match} AND count = 0", *key)
        await conn.execute(
            f"INSERT INTO analytics_delivery VALUES ({HOUR}, $2, $3, $4, $5, 1) ON CONFLICT "
            "(bucket, channel, our_address, status, error_code) DO UPDATE SET "
            "count = analytics_delivery.count + 1",
            *args,
            status,
            funnel_error,
        )
    await conn.execute(
        "UPDATE analytics_facts SET funnel_status = $2, funnel_error = $3, delivered_at = $4 "
        "WHERE id = $1",
        fact_id,
        status,
        funnel_error,
        delivered_at,
    )
    await settle_metrics(conn, fact_id)


async def settle_metrics(conn: Connection, fact_id: UUID) -> None:
    """Count reply and delivery times once each, as soon as both of their ends are known."""
    fact = await conn.fetchrow(
        "SELECT inbound_at, sent_at, delivered_at, message_sid, channel, our_address, "
        "counted_reply, counted_delivery FROM analytics_facts WHERE id = $1",
        fact_id,
    )
    if fact is None or fact["inbound_at"] is None:
        return
    where = (fact["inbound_at"], fact["channel"], fact["our_address"])
    # (metric, the time it ends at, the flag that says it was counted)
    ends = (
        ("reply", fact["sent_at"] if fact["message_sid"] else None, "counted_reply"),
        ("delivered", fact["delivered_at"], "counted_delivery"),
    )
    for metric, end, flag in ends:
        if end is not None and not fact[flag]:
            ms = (end - fact["inbound_at"]).total_seconds() * 1000
            await add_latency(conn, *where, metric, ms)
            await conn.execute(f"UPDATE analytics_facts SET {flag} = true WHERE id = $1", fact_id)
