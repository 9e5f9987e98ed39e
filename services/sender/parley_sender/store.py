"""The sender's SQL (its tables: ``tables``): replies to send (a leased queue with attempt
state), opt-outs.

A claim leases the oldest due reply of each conversation with no earlier open one, marks it
'sending' (committed before Twilio is called, so a crash after Twilio accepted it is known to
be ambiguous) and says whether the participant has opted out, in one statement. Outcomes are
recorded in one statement per group of them, each fenced by its lease token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from parley_sender.core import OPTED_OUT_CODE
from parley_sender.tables import SERVICE
from parley_shared.conversations import closed_sql
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    Envelope,
    MessageSent,
    OutboundRequested,
    ReplyGenerated,
    encode,
)
from parley_shared.sealing import ERASED
from parley_shared.topics import MESSAGE_SENT

# Whether the reply in row ``o`` answers a message of a conversation closed since.
CLOSED = closed_sql(SERVICE, "o.conversation_key", "o.inbound_at")


async def add_replies(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
    # Conflicts on either key: a reply seen again, or its outcome read first (another topic),
    # is never queued a second time.
    await conn.execute(
        "INSERT INTO sender_outbound (reply_event_id, in_reply_to, conversation_key, event, "
        "inbound_at, state, subject) SELECT r.id, r.inbound, r.key, r.event, r.at, r.state, "
        "r.subject FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], "
        "$5::timestamptz[], $6::text[], $7::uuid[]) "
        "AS r(id, inbound, key, event, at, state, subject) ON CONFLICT (reply_event_id) "
        "DO UPDATE SET event = EXCLUDED.event, in_reply_to = EXCLUDED.in_reply_to, "
        "inbound_at = EXCLUDED.inbound_at, subject = EXCLUDED.subject "
        "WHERE sender_outbound.event IS NULL",
        [e.event_id for e in events],
        [e.payload.in_reply_to for e in events],
        [e.conversation_key for e in events],
        [encode(e) for e in events],
        [e.payload.inbound_at for e in events],
        [initial_state(e) for e in events],
        [e.subject for e in events],
    )


def initial_state(event: Envelope[ReplyGenerated] | Envelope[OutboundRequested]) -> str:
    """Queued to send, unless no one is left to send to (its participant was erased)."""
    return "skipped" if event.payload.participant == ERASED else "pending"


async def add_requests(conn: Connection, events: Sequence[Envelope[OutboundRequested]]) -> None:
    """Operators' messages, queued like replies (one queue keeps a conversation in order);
    the request time stands where a reply has its inbound's, for the close check."""
    await conn.execute(
        "INSERT INTO sender_outbound (reply_event_id, conversation_key, event, inbound_at, "
        "state, subject) SELECT r.id, r.key, r.event, r.at, r.state, r.subject FROM "
        "unnest($1::uuid[], $2::text[], $3::bytea[], $4::timestamptz[], $5::text[], "
        "$6::uuid[]) AS r(id, key, event, at, state, subject) "
        "ON CONFLICT (reply_event_id) DO UPDATE SET event = EXCLUDED.event, "
        "inbound_at = EXCLUDED.inbound_at, subject = EXCLUDED.subject "
        "WHERE sender_outbound.event IS NULL",
        [e.event_id for e in events],
        [e.conversation_key for e in events],
        [encode(e) for e in events],
        [e.occurred_at for e in events],
        [initial_state(e) for e in events],
        [e.subject for e in events],
    )


def unsubscribed(sent: MessageSent) -> bool:
    """Twilio refused the send because the participant opted out with Twilio (not a send we
    cancelled ourselves because of a STOP we knew of)."""
    return sent.error_code == OPTED_OUT_CODE and sent.status != "canceled"


def state_of(sent: MessageSent) -> str:
    if sent.status == "canceled":
        return "skipped"
    return "failed" if sent.message_sid is None else "sent"


async def record_outcomes_from_log(
    conn: Connection, events: Sequence[Envelope[MessageSent]]
) -> None:
    """Our own ``message.sent`` seen on the log: that reply is settled, even on a rebuild."""
    await conn.execute(
        "INSERT INTO sender_outbound (reply_event_id, conversation_key, state, message_sid, "
        "error_code, error_message, attempts, subject) SELECT * FROM unnest($1::uuid[], "
        "$2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[], $8::uuid[]) "
        "ON CONFLICT (reply_event_id) DO UPDATE SET state = EXCLUDED.state, "
        "message_sid = EXCLUDED.message_sid, error_code = EXCLUDED.error_code, "
        "error_message = EXCLUDED.error_message, attempts = EXCLUDED.attempts, "
        "lease_token = NULL",
        [e.payload.reply_event_id for e in events],
        [e.conversation_key for e in events],
        [state_of(e.payload) for e in events],
        [e.payload.message_sid for e in events],
        [e.payload.error_code for e in events],
        [e.payload.error_message for e in events],
        [e.payload.attempts for e in events],
        [e.subject for e in events],
    )
    # Twilio's "unsubscribed" answer is an opt-out as much as a STOP is; from the log, so
    # that a rebuild knows it too.
    await set_opt_outs(
        conn, [(e.conversation_key, True, e.occurred_at) for e in events if unsubscribed(e.payload)]
    )


async def record_inbound_times(conn: Connection, times: Sequence[tuple[str, datetime]]) -> None:
    """The latest inbound time per thread: the same whatever order messages are read in."""
    if times:
        await conn.execute(
            "INSERT INTO sender_windows SELECT key, max(at) FROM unnest($1::text[], "
            "$2::timestamptz[]) AS t(key, at) GROUP BY key ON CONFLICT (conversation_key) "
            "DO UPDATE SET last_inbound_at = greatest(sender_windows.last_inbound_at, "
            "EXCLUDED.last_inbound_at)",
            [key for key, _ in times],
            [at for _, at in times],
        )


async def set_opt_outs(conn: Connection, changes: Sequence[tuple[str, bool, datetime]]) -> None:
    # Only a newer keyword wins, so replaying in any order ends in the same state.
    for key, opted_out, at in changes:
        await conn.execute(
            "INSERT INTO sender_optouts (conversation_key, opted_out, changed_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (conversation_key) DO UPDATE "
            "SET opted_out = EXCLUDED.opted_out, changed_at = EXCLUDED.changed_at "
            "WHERE sender_optouts.changed_at <= EXCLUDED.changed_at",
            key,
            opted_out,
            at,
        )


async def claim(pool: Pool, limit: int, lease_s: float) -> list[Any]:
    """Lease due replies; each comes back with its state before the claim ('sending' means an
    earlier attempt may have reached Twilio) and whether its participant opted out."""
    return await pool.fetch(
        f"""
        WITH due AS (
            SELECT o.reply_event_id, o.state AS was, o.attempts, o.sending_since,
                   coalesce((SELECT x.opted_out FROM sender_optouts x
                             WHERE x.conversation_key = o.conversation_key), false) AS opted_out,
                   {CLOSED} AS closed,
                   (SELECT w.last_inbound_at FROM sender_windows w
                    WHERE w.conversation_key = o.conversation_key) AS last_inbound_at
            FROM sender_outbound o
            WHERE o.state IN ('pending', 'sending') AND o.event IS NOT NULL
              AND o.due_at <= now()
              AND NOT EXISTS (SELECT 1 FROM sender_outbound e
                              WHERE e.conversation_key = o.conversation_key
                                AND e.state IN ('pending', 'sending') AND e.seq < o.seq)
            ORDER BY o.seq LIMIT $1 FOR UPDATE OF o SKIP LOCKED
        )
        UPDATE sender_outbound o SET
            due_at = now() + make_interval(secs => $2), lease_token = gen_random_uuid(),
            state = CASE WHEN due.opted_out OR due.closed THEN o.state ELSE 'sending' END,
            attempts = o.attempts + CASE WHEN due.opted_out OR due.closed THEN 0 ELSE 1 END,
            sending_since = CASE WHEN due.opted_out OR due.closed THEN o.sending_since
                                 ELSE coalesce(o.sending_since, now()) END,
            first_attempt_at = coalesce(o.first_attempt_at, now())
        FROM due WHERE o.reply_event_id = due.reply_event_id
        RETURNING o.reply_event_id, o.lease_token, o.event, due.was, o.attempts,
                  o.sending_since, due.opted_out, due.closed, o.seq, due.last_inbound_at,
                  extract(epoch FROM now() - o.first_attempt_at)::float8 AS elapsed_s
        """,
        limit,
        lease_s,
    )


@dataclass(frozen=True)
class Settled:
    """A reply's final outcome: the row's state, its ``message.sent``, and the opt-out it
    records (Twilio's 21610) if any."""

    reply_id: UUID
    token: UUID
    state: str
    sent: Envelope[MessageSent]
    opt_out: tuple[str, datetime] | None


async def settle(pool: Pool, outcomes: Sequence[Settled]) -> set[UUID]:
    """Record final outcomes and queue their ``message.sent``, each only if its lease is
    still ours, in one statement. Returns the replies settled."""
    rows = await pool.fetch(
        """
        WITH s AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[],
                                 $6::text[], $7::bytea[], $8::text[], $9::timestamptz[])
                AS s(reply_id, token, state, message_sid, error_code, error_message, event,
                     opt_out_key, opt_out_at)
        ),
        settled AS (
            UPDATE sender_outbound o SET state = s.state, message_sid = s.message_sid,
                error_code = s.error_code, error_message = s.error_message, lease_token = NULL
            FROM s WHERE o.reply_event_id = s.reply_id AND o.lease_token = s.token
            RETURNING o.reply_event_id
        ),
        mine AS (SELECT s.* FROM s JOIN settled ON settled.reply_event_id = s.reply_id),
        optout AS (
            INSERT INTO sender_optouts (conversation_key, opted_out, changed_at)
            SELECT DISTINCT ON (opt_out_key) opt_out_key, true, opt_out_at FROM mine
            WHERE opt_out_key IS NOT NULL ORDER BY opt_out_key, opt_out_at DESC
            ON CONFLICT (conversation_key) DO UPDATE SET opted_out = true,
                changed_at = EXCLUDED.changed_at
            WHERE sender_optouts.changed_at <= EXCLUDED.changed_at
        ),
        outbox AS (
            INSERT INTO sender_outbox (topic, event) SELECT $10, event FROM mine
        )
        SELECT reply_event_id FROM settled
        """,
        [o.reply_id for o in outcomes],
        [o.token for o in outcomes],
        [o.state for o in outcomes],
        [o.sent.payload.message_sid for o in outcomes],
        [o.sent.payload.error_code for o in outcomes],
        [o.sent.payload.error_message for o in outcomes],
        [encode(o.sent) for o in outcomes],
        [o.opt_out[0] if o.opt_out else None for o in outcomes],
        [o.opt_out[1] if o.opt_out else None for o in outcomes],
        MESSAGE_SENT,
    )
    return {row["reply_event_id"] for row in rows}


async def backlog(pool: Pool) -> tuple[int, float]:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(inbound_at)), 0) AS age "
        "FROM sender_outbound WHERE state IN ('pending', 'sending') AND event IS NOT NULL"
    )
    assert row is not None
    return int(row["n"]), float(row["age"])


async def sids_taken(pool: Pool, sids: Sequence[str], reply_id: UUID) -> set[str]:
    """Which of ``sids`` other replies have recorded as theirs."""
    rows = await pool.fetch(
        "SELECT message_sid FROM sender_outbound WHERE message_sid = ANY($1::text[]) "
        "AND reply_event_id <> $2",
        list(sids),
        reply_id,
    )
    return {row["message_sid"] for row in rows}


async def retry_later(
    pool: Pool,
    reply_id: UUID,
    token: UUID,
    delay_s: float,
    error_code: int | None,
    error_message: str | None,
    *,
    maybe_sent: bool,
) -> bool:
    """Schedule another attempt. When Twilio may have accepted this one (time-out, network
    error, 5xx) the row stays 'sending', so the next attempt first looks for the message."""
    return bool(
        await pool.fetchval(
            "UPDATE sender_outbound SET state = CASE WHEN $6 THEN 'sending' ELSE 'pending' END,"
            " sending_since = CASE WHEN $6 THEN sending_since END, lease_token = NULL, "
            "due_at = now() + make_interval(secs => $3), error_code = $4, error_message = $5 "
            "WHERE reply_event_id = $1 AND lease_token = $2 RETURNING true",
            reply_id,
            token,
            delay_s,
            error_code,
            error_message,
            maybe_sent,
        )
    )
