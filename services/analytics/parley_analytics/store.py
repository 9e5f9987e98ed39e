"""Analytics writes (the tables: ``tables``): one fact row per message, and hourly aggregates
the API reads.

Every aggregate is keyed by (hour, channel, our number), so any range and filter is a sum
over few rows. Facts whose parts come from different topics (a reply's text and model from
``reply.generated``, its Twilio SID from ``message.sent``, its delivery from
``status.updated``) are assembled in whatever order the topics deliver them; each derived
figure is counted once, when its last part arrives.

Every write takes a whole batch of events of one type and is a handful of set-based
statements however many events there are; aggregates are summed per key in the statement
(``GROUP BY``) so a batch touching one hour many times updates its row once. What the parts
of outbound facts add up to (funnel, reply and delivery times) is settled once per batch,
after every part in it was written (``AnalyticsService.apply_locked``, ``funnel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from parley_analytics import participants
from parley_shared.conversations import place_all, rewrite_thread
from parley_shared.db import Connection, columns
from parley_shared.events import Envelope, MessageReceived, MessageSent, ReplyGenerated


async def add_inbound(
    conn: Connection, events: Sequence[Envelope[MessageReceived]], opt_outs: Sequence[bool]
) -> None:
    rows = [
        (
            e.event_id,
            e.conversation_key,
            e.payload.channel,
            e.payload.our_address,
            e.payload.participant,
            e.occurred_at,
            e.payload.body,
            e.payload.message_sid,
            opt_out,
            e.subject,
        )
        for e, opt_out in zip(events, opt_outs, strict=True)
    ]
    cols = columns(rows, 10)
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, message_sid, status, subject) "
        "SELECT id, key, channel, ours, participant, 'inbound', at, body, sid, 'received', "
        "subject FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[], $7::text[], $8::text[], $9::uuid[]) "
        "AS u(id, key, channel, ours, participant, at, body, sid, subject)",
        *cols[:8],
        cols[9],
    )
    await conn.execute(
        "INSERT INTO analytics_hourly (bucket, channel, our_address, messages_in, opt_outs) "
        "SELECT date_trunc('hour', at), channel, ours, count(*), count(*) FILTER (WHERE opt) "
        "FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[]) "
        "AS u(channel, ours, at, opt) GROUP BY 1, 2, 3 "
        "ON CONFLICT (bucket, channel, our_address) DO UPDATE SET "
        "messages_in = analytics_hourly.messages_in + EXCLUDED.messages_in, "
        "opt_outs = analytics_hourly.opt_outs + EXCLUDED.opt_outs",
        cols[2],
        cols[3],
        cols[5],
        cols[8],
    )
    # Who wrote: their subject where their events are sealed (the same when their number is
    # erased, so a rebuild counts them alike), else their number.
    who = [str(e.subject) if e.subject else e.payload.participant for e in events]
    await participants.add(conn, list(zip(cols[5], cols[2], cols[3], who, strict=True)))
    await place_all(
        conn,
        "analytics_conversations",
        [(e.conversation_key, e.occurred_at) for e in events],
        {
            e.conversation_key: {"channel": e.payload.channel, "our_address": e.payload.our_address}
            for e in events
        },
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


async def add_replies(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
    rows = [
        (
            e.event_id,
            e.conversation_key,
            e.payload.channel,
            e.payload.our_address,
            e.payload.participant,
            e.occurred_at,
            e.payload.body,
            e.payload.inbound_at,
            e.payload.source,
            e.payload.model or "unknown",
            e.payload.prompt_tokens,
            e.payload.completion_tokens,
            e.payload.latency_ms,
            e.payload.segments,
            e.subject,
        )
        for e in events
    ]
    cols = columns(rows, 15)
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, inbound_at, source, model, prompt_tokens, "
        "completion_tokens, ai_latency_ms, segments, subject) "
        "SELECT id, key, channel, ours, participant, 'outbound', at, body, inbound_at, source, "
        "model, prompt, completion, latency, segments, subject FROM unnest($1::uuid[], "
        "$2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], "
        "$8::timestamptz[], $9::text[], $10::text[], $11::int[], $12::int[], $13::int[], "
        "$14::int[], $15::uuid[]) AS u(id, key, channel, ours, participant, at, body, "
        "inbound_at, source, model, prompt, completion, latency, segments, subject) "
        "ON CONFLICT (id) DO UPDATE SET "
        "occurred_at = EXCLUDED.occurred_at, inbound_at = EXCLUDED.inbound_at, "
        "source = EXCLUDED.source, model = EXCLUDED.model, "
        "prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,"
        " ai_latency_ms = EXCLUDED.ai_latency_ms, segments = EXCLUDED.segments",
        *cols,
    )
    await conn.execute(
        "INSERT INTO analytics_ai SELECT date_trunc('hour', inbound_at), channel, ours, model, "
        "source, count(*), sum(prompt), sum(completion) FROM unnest($1::timestamptz[], "
        "$2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[]) "
        "AS u(inbound_at, channel, ours, model, source, prompt, completion) "
        "GROUP BY 1, 2, 3, 4, 5 ON CONFLICT (bucket, channel, our_address, model, source) "
        "DO UPDATE SET replies = analytics_ai.replies + EXCLUDED.replies, "
        "prompt_tokens = analytics_ai.prompt_tokens + EXCLUDED.prompt_tokens, "
        "completion_tokens = analytics_ai.completion_tokens + EXCLUDED.completion_tokens",
        cols[7],
        cols[2],
        cols[3],
        cols[9],
        cols[8],
        cols[10],
        cols[11],
    )


async def add_sent(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
    # One outcome per reply: a repeat in the same batch would touch a row twice in one statement.
    latest = {e.payload.reply_event_id: e for e in events}
    rows = [
        (
            e.payload.reply_event_id,
            e.conversation_key,
            e.payload.channel,
            e.payload.our_address,
            e.payload.participant,
            e.occurred_at,
            e.payload.body,
            e.payload.message_sid,
            e.payload.status,
            e.payload.error_code,
            e.subject,
        )
        for e in latest.values()
    ]
    await conn.execute(
        "INSERT INTO analytics_facts (id, conversation_key, channel, our_address, participant, "
        "direction, occurred_at, body, sent_at, message_sid, status, error_code, subject) "
        "SELECT id, key, channel, ours, participant, 'outbound', at, body, at, sid, status, "
        "error, subject FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::int[], $11::uuid[]) "
        "AS u(id, key, channel, ours, participant, at, body, sid, status, error, subject) "
        "ON CONFLICT (id) DO UPDATE "
        "SET sent_at = EXCLUDED.sent_at, message_sid = EXCLUDED.message_sid, "
        "status = EXCLUDED.status, error_code = EXCLUDED.error_code",
        *columns(rows, 11),
    )
    handed = [
        (e.occurred_at, e.payload.channel, e.payload.our_address)
        for e in events
        if e.payload.message_sid
    ]
    if handed:
        await conn.execute(
            "INSERT INTO analytics_hourly (bucket, channel, our_address, messages_out) "
            "SELECT date_trunc('hour', at), channel, ours, count(*) "
            "FROM unnest($1::timestamptz[], $2::text[], $3::text[]) AS u(at, channel, ours) "
            "GROUP BY 1, 2, 3 ON CONFLICT (bucket, channel, our_address) DO UPDATE SET "
            "messages_out = analytics_hourly.messages_out + EXCLUDED.messages_out",
            *columns(handed, 3),
        )


async def add_statuses(
    conn: Connection, statuses: Sequence[tuple[str, str, datetime, int | None]]
) -> None:
    """(message SID, status, time, error code) callbacks."""
    await conn.execute(
        "INSERT INTO analytics_statuses SELECT * FROM unnest($1::text[], $2::text[], "
        "$3::timestamptz[], $4::int[]) ON CONFLICT DO NOTHING",
        *columns(statuses, 4),
    )
