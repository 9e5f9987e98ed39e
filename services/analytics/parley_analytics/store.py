"""Analytics tables: one fact row per message, and hourly aggregates the API reads.

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

from parley_analytics import contacts, conversation_hours, participants
from parley_shared import erasure, retention, tenancy
from parley_shared.conversations import place_all, rewrite_thread
from parley_shared.db import Connection, columns
from parley_shared.events import Envelope, MessageReceived, MessageSent, ReplyGenerated
from parley_shared.migrations import Migration, baseline

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
-- Room in each page, so settling a fact (funnel, delivery time: no indexed column) is a
-- HOT update that touches no index.
ALTER TABLE analytics_facts SET (fillfactor = 70);
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

# Step N takes the tables to version N; append, never edit a released step.
MIGRATIONS = (
    baseline(SERVICE, SCHEMA),
    Migration(
        "handoffs: takeovers, requests for a person, people's messages",
        """
        CREATE TABLE IF NOT EXISTS analytics_handoffs (
            conversation_id uuid NOT NULL, at timestamptz NOT NULL, action text NOT NULL,
            conversation_key text NOT NULL, channel text NOT NULL, our_address text NOT NULL,
            PRIMARY KEY (conversation_id, at)
        );
        CREATE INDEX IF NOT EXISTS analytics_handoffs_at ON analytics_handoffs (at);
        CREATE TABLE IF NOT EXISTS analytics_requests (
            id uuid PRIMARY KEY, conversation_key text NOT NULL, at timestamptz NOT NULL,
            channel text NOT NULL, our_address text NOT NULL
        );
        CREATE INDEX IF NOT EXISTS analytics_requests_key
            ON analytics_requests (conversation_key, at);
        ALTER TABLE analytics_facts ADD COLUMN IF NOT EXISTS by_person boolean NOT NULL
            DEFAULT false;
        CREATE INDEX IF NOT EXISTS analytics_facts_by_person ON analytics_facts
            (conversation_key, sent_at) WHERE by_person;
        """,
    ),
    participants.MIGRATION,
    Migration(
        "daily latency histograms; conversations counted from their index alone",
        """
        CREATE TABLE IF NOT EXISTS analytics_latency_daily
            (LIKE analytics_latency INCLUDING ALL);
        INSERT INTO analytics_latency_daily
            SELECT date_trunc('day', bucket), channel, our_address, metric, bin, sum(count),
                   sum(sum_ms)
            FROM analytics_latency GROUP BY 1, 2, 3, 4, 5 ON CONFLICT DO NOTHING;
        CREATE INDEX IF NOT EXISTS analytics_conversations_opened_covering
            ON analytics_conversations (opened_at) INCLUDE (closed_at, channel, our_address);
        DROP INDEX IF EXISTS analytics_conversations_opened;
        """,
    ),
    tenancy.migration(SERVICE),
    conversation_hours.MIGRATION,
    erasure.migration(
        SERVICE,
        """
        ALTER TABLE analytics_facts ADD COLUMN IF NOT EXISTS subject uuid;
        CREATE INDEX IF NOT EXISTS analytics_facts_subject ON analytics_facts (subject)
            WHERE subject IS NOT NULL;
        """,
    ),
    retention.migration(SERVICE),
    contacts.MIGRATION,
)


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
