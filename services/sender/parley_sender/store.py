"""The sender's tables: replies to send (with their attempt state) and opt-outs."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from parley_shared.db import Connection
from parley_shared.events import Envelope, MessageSent, ReplyGenerated, encode

SERVICE = "sender"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sender_outbound (
    reply_event_id uuid PRIMARY KEY,
    in_reply_to uuid UNIQUE,
    seq bigserial UNIQUE,
    conversation_key text NOT NULL,
    event bytea,
    state text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sending_since timestamptz,
    message_sid text,
    error_code int,
    error_message text
);
CREATE INDEX IF NOT EXISTS sender_outbound_open ON sender_outbound (conversation_key, seq)
    WHERE state IN ('pending', 'sending');
CREATE TABLE IF NOT EXISTS sender_optouts (
    conversation_key text PRIMARY KEY,
    opted_out boolean NOT NULL,
    changed_at timestamptz NOT NULL
);
"""


async def add_reply(conn: Connection, event: Envelope) -> None:
    assert isinstance(event.payload, ReplyGenerated)
    # ON CONFLICT covers both keys: a second reply for the same inbound is never queued.
    await conn.execute(
        "INSERT INTO sender_outbound (reply_event_id, in_reply_to, conversation_key, event, state)"
        " VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (reply_event_id) DO UPDATE "
        "SET event = EXCLUDED.event, in_reply_to = EXCLUDED.in_reply_to "
        "WHERE sender_outbound.event IS NULL",
        event.event_id,
        event.payload.in_reply_to,
        event.conversation_key,
        encode(event),
    )


async def record_outcome_from_log(conn: Connection, event: Envelope) -> None:
    """Our own ``message.sent`` seen on the log: that reply is settled, even on a rebuild."""
    assert isinstance(event.payload, MessageSent)
    p = event.payload
    state = "skipped" if p.status == "canceled" else "failed" if p.message_sid is None else "sent"
    await conn.execute(
        "INSERT INTO sender_outbound (reply_event_id, conversation_key, state, message_sid, "
        "error_code, error_message, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (reply_event_id) DO UPDATE SET state = EXCLUDED.state, "
        "message_sid = EXCLUDED.message_sid, error_code = EXCLUDED.error_code, "
        "error_message = EXCLUDED.error_message, attempts = EXCLUDED.attempts",
        p.reply_event_id,
        event.conversation_key,
        state,
        p.message_sid,
        p.error_code,
        p.error_message,
        p.attempts,
    )


async def set_opt_out(conn: Connection, key: str, opted_out: bool, at: datetime) -> None:
    # Only a newer keyword wins, so replaying in any order ends in the same state.
    await conn.execute(
        "INSERT INTO sender_optouts (conversation_key, opted_out, changed_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (conversation_key) DO UPDATE SET opted_out = EXCLUDED.opted_out, "
        "changed_at = EXCLUDED.changed_at WHERE sender_optouts.changed_at <= EXCLUDED.changed_at",
        key,
        opted_out,
        at,
    )


async def is_opted_out(conn: Connection, key: str) -> bool:
    return bool(
        await conn.fetchval("SELECT opted_out FROM sender_optouts WHERE conversation_key = $1", key)
    )


async def claim_next(conn: Connection, lease_s: float) -> Any:
    """Lock the next reply due, oldest first per conversation, and lease it to this worker."""
    row = await conn.fetchrow(
        """
        SELECT o.reply_event_id, o.event, o.state, o.attempts, o.sending_since
        FROM sender_outbound o
        WHERE o.state IN ('pending', 'sending') AND o.event IS NOT NULL
          AND o.next_attempt_at <= now()
          AND NOT EXISTS (SELECT 1 FROM sender_outbound e
                          WHERE e.conversation_key = o.conversation_key
                            AND e.state IN ('pending', 'sending') AND e.seq < o.seq)
        ORDER BY o.seq LIMIT 1 FOR UPDATE SKIP LOCKED
        """
    )
    if row is not None:
        await conn.execute(
            "UPDATE sender_outbound SET next_attempt_at = now() + make_interval(secs => $2) "
            "WHERE reply_event_id = $1",
            row["reply_event_id"],
            lease_s,
        )
    return row


async def mark_sending(conn: Connection, reply_id: UUID) -> datetime:
    at: datetime = await conn.fetchval(
        "UPDATE sender_outbound SET state = 'sending', attempts = attempts + 1, "
        "sending_since = coalesce(sending_since, now()) WHERE reply_event_id = $1 "
        "RETURNING sending_since",
        reply_id,
    )
    return at


async def settle(
    conn: Connection,
    reply_id: UUID,
    state: str,
    message_sid: str | None,
    error_code: int | None,
    error_message: str | None,
) -> None:
    await conn.execute(
        "UPDATE sender_outbound SET state = $2, message_sid = $3, error_code = $4, "
        "error_message = $5 WHERE reply_event_id = $1",
        reply_id,
        state,
        message_sid,
        error_code,
        error_message,
    )


async def retry_later(
    conn: Connection,
    reply_id: UUID,
    delay_s: float,
    error_code: int | None,
    error_message: str | None,
    *,
    maybe_sent: bool,
) -> None:
    """Schedule another attempt. When Twilio may have accepted this one (time-out, network
    error, 5xx) the row stays 'sending', so the next attempt first looks for the message."""
    await conn.execute(
        "UPDATE sender_outbound SET state = CASE WHEN $5 THEN 'sending' ELSE 'pending' END, "
        "sending_since = CASE WHEN $5 THEN sending_since END, "
        "next_attempt_at = now() + make_interval(secs => $2), error_code = $3, "
        "error_message = $4 WHERE reply_event_id = $1",
        reply_id,
        delay_s,
        error_code,
        error_message,
        maybe_sent,
    )
