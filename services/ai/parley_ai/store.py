"""The ai service's tables: an inbox of inbound messages to answer, and conversation turns.

The consumer only records events here (fast, and offsets are committed right after); workers
take the oldest pending message of each conversation with ``FOR UPDATE SKIP LOCKED``, so a
slow model call for one conversation never holds up another, while one conversation's
replies stay in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from parley_ai.core import Turn
from parley_shared.db import Connection
from parley_shared.events import ConversationChanged, Envelope, ReplyGenerated, encode
from parley_shared.identity import derived_event_id
from parley_shared.topics import REPLY_GENERATED

SERVICE = "ai"

SCHEMA = """
CREATE TABLE IF NOT EXISTS ai_inbox (
    event_id uuid PRIMARY KEY,
    seq bigserial UNIQUE,
    conversation_key text NOT NULL,
    occurred_at timestamptz NOT NULL,
    event bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'done', 'skipped')),
    reason text,
    reply_event_id uuid,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ai_inbox_pending ON ai_inbox (conversation_key, seq)
    WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS ai_turns (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    anchor_at timestamptz NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_turns_by_key ON ai_turns (conversation_key, anchor_at);
CREATE TABLE IF NOT EXISTS ai_keywords (
    conversation_key text NOT NULL,
    at timestamptz NOT NULL,
    opted_out boolean NOT NULL,
    PRIMARY KEY (conversation_key, at)
);
CREATE TABLE IF NOT EXISTS ai_closes (
    conversation_id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    closed_at timestamptz NOT NULL,
    reopened boolean NOT NULL DEFAULT false
);
"""


async def record_inbound(
    conn: Connection, event: Envelope, state: str, reason: str | None, user_text: str | None
) -> None:
    # On a replay the reply (another topic) may have been read first: then this is answered.
    reply_id = derived_event_id(REPLY_GENERATED, event.event_id)
    answered = await conn.fetchval("SELECT 1 FROM ai_turns WHERE id = $1", reply_id)
    await conn.execute(
        "INSERT INTO ai_inbox (event_id, conversation_key, occurred_at, event, state, reason, "
        "reply_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        event.event_id,
        event.conversation_key,
        event.occurred_at,
        encode(event),
        "done" if answered else state,
        None if answered else reason,
        reply_id if answered else None,
    )
    if user_text:
        await add_turn(
            conn, event.event_id, event.conversation_key, event.occurred_at, "user", user_text
        )


async def record_keyword(conn: Connection, event: Envelope, opted_out: bool) -> None:
    await conn.execute(
        "INSERT INTO ai_keywords VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        event.conversation_key,
        event.occurred_at,
        opted_out,
    )


async def opted_out_at(conn: Connection, key: str, at: datetime) -> bool:
    """Whether the participant had opted out (STOP, not yet START) when they wrote at ``at``."""
    return bool(
        await conn.fetchval(
            "SELECT opted_out FROM ai_keywords WHERE conversation_key = $1 AND at <= $2 "
            "ORDER BY at DESC LIMIT 1",
            key,
            at,
        )
    )


async def add_turn(
    conn: Connection, turn_id: UUID, key: str, anchor_at: datetime, role: str, content: str
) -> None:
    await conn.execute(
        "INSERT INTO ai_turns (id, conversation_key, anchor_at, role, content) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        turn_id,
        key,
        anchor_at,
        role,
        content,
    )


async def record_reply(conn: Connection, event: Envelope) -> None:
    """A reply on the log (ours, live or replayed): the inbound is answered."""
    assert isinstance(event.payload, ReplyGenerated)
    await conn.execute(
        "UPDATE ai_inbox SET state = 'done', reason = NULL, reply_event_id = $2 "
        "WHERE event_id = $1",
        event.payload.in_reply_to,
        event.event_id,
    )
    # Anchored at the answered message's arrival, as the worker does, whatever order the
    # topics are read in.
    await add_turn(
        conn,
        event.event_id,
        event.conversation_key,
        event.payload.inbound_at,
        "assistant",
        event.payload.body,
    )


async def record_change(conn: Connection, event: Envelope) -> None:
    assert isinstance(event.payload, ConversationChanged)
    if event.payload.action == "closed":
        await conn.execute(
            "INSERT INTO ai_closes (conversation_id, conversation_key, closed_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (conversation_id) DO UPDATE "
            "SET closed_at = EXCLUDED.closed_at, reopened = false",
            event.payload.conversation_id,
            event.conversation_key,
            event.occurred_at,
        )
    else:
        await conn.execute(
            "UPDATE ai_closes SET reopened = true WHERE conversation_id = $1",
            event.payload.conversation_id,
        )


async def claim_next(conn: Connection, settle_s: float = 0.0) -> Any:
    """Lock the oldest pending inbound of a conversation with no earlier pending one, once it
    has been recorded for ``settle_s``."""
    return await conn.fetchrow(
        """
        SELECT i.event_id, i.conversation_key, i.occurred_at, i.event FROM ai_inbox i
        WHERE i.state = 'pending'
          AND i.recorded_at <= clock_timestamp() - make_interval(secs => $1)
          AND NOT EXISTS (
            SELECT 1 FROM ai_inbox e WHERE e.conversation_key = i.conversation_key
              AND e.state = 'pending' AND e.seq < i.seq)
        ORDER BY i.seq LIMIT 1 FOR UPDATE SKIP LOCKED
        """,
        settle_s,
    )


async def closed_at_time(conn: Connection, key: str, at: datetime) -> bool:
    """Whether the conversation a message sent at ``at`` belongs to has been closed.

    A conversation ends at its close; the first close after ``at`` is the one that ends
    this message's conversation, unless it was reopened.
    """
    row = await conn.fetchrow(
        "SELECT reopened FROM ai_closes WHERE conversation_key = $1 AND closed_at > $2 "
        "ORDER BY closed_at LIMIT 1",
        key,
        at,
    )
    return row is not None and not row["reopened"]


async def history(conn: Connection, key: str, before: datetime, limit: int) -> list[Turn]:
    """The last ``limit`` turns of the conversation a message sent at ``before`` belongs to."""
    if limit == 0:
        return []
    since = await conn.fetchval(
        "SELECT max(closed_at) FROM ai_closes WHERE conversation_key = $1 "
        "AND closed_at <= $2 AND NOT reopened",
        key,
        before,
    )
    rows = await conn.fetch(
        """
        SELECT role, content FROM (
            SELECT role, content, anchor_at, role = 'assistant' AS second FROM ai_turns
            WHERE conversation_key = $1 AND anchor_at < $2
              AND ($3::timestamptz IS NULL OR anchor_at > $3)
            ORDER BY anchor_at DESC, second DESC LIMIT $4
        ) recent ORDER BY anchor_at, second
        """,
        key,
        before,
        since,
        limit,
    )
    return [Turn(role=row["role"], content=row["content"]) for row in rows]


async def finish(
    conn: Connection, inbound_id: UUID, state: str, reason: str | None, reply_id: UUID | None
) -> None:
    await conn.execute(
        "UPDATE ai_inbox SET state = $2, reason = $3, reply_event_id = $4 WHERE event_id = $1",
        inbound_id,
        state,
        reason,
        reply_id,
    )
