"""The ai service's SQL (its tables: ``tables``): an inbox of inbound messages to answer,
conversation turns, keywords and closes. Every write is set-based (one statement per kind of
change per batch).

The inbox is a leased queue (``parley_shared.leases``): a claim leases the oldest due message
of each conversation with no earlier open one and reads what the model call needs in the same
statement; the outcome is recorded in one statement fenced by the lease token, which checks
the close and opt-out state again at that moment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from parley_ai.core import Turn
from parley_ai.handoffs import HANDED_OFF, record_handoffs
from parley_ai.tables import SERVICE
from parley_shared.conversations import closed_sql, record_closes
from parley_shared.db import Connection, Pool, columns
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    ReplyGenerated,
    encode,
)
from parley_shared.identity import derived_event_id
from parley_shared.sealing import ERASED
from parley_shared.topics import REPLY_GENERATED

HUMAN = "human_requested"  # the skip reason of a message asking for a person


# Whether the participant had opted out (STOP, not yet START) when writing at ``m.occurred_at``.
OPTED_OUT = """coalesce((SELECT k.opted_out FROM ai_keywords k
    WHERE k.conversation_key = m.conversation_key AND k.at <= m.occurred_at
    ORDER BY k.at DESC LIMIT 1), false)"""
# Whether the conversation a message written at ``m.occurred_at`` belongs to is closed: the
# first close after it ends that conversation, unless it was reopened.
CLOSED = closed_sql(SERVICE, "m.conversation_key", "m.occurred_at")


async def record_inbound(
    conn: Connection,
    rows: Sequence[tuple[Envelope, str | None, str | None]],
    per_minute: int = 0,
) -> None:
    """Queue inbound messages: (event, why it is not answered or None, the model's text of it).
    A participant's messages past ``per_minute`` in the minute up to each (0: no limit) are
    not answered ('rate_limited').

    On a replay the reply (another topic) may have been read first: then it is answered."""
    keywords = [
        (e.conversation_key, e.occurred_at, skip == "keyword:opt_out")
        for e, skip, _ in rows
        if skip in ("keyword:opt_out", "keyword:opt_in")
    ]
    await record_handoffs(
        conn, [(e.conversation_key, e.occurred_at, True) for e, skip, _ in rows if skip == HUMAN]
    )
    if keywords:
        await conn.execute(
            "INSERT INTO ai_keywords SELECT * FROM unnest($1::text[], $2::timestamptz[], "
            "$3::boolean[]) ON CONFLICT DO NOTHING",
            *columns(keywords, 3),
        )
    await conn.execute(
        f"""
        INSERT INTO ai_inbox (event_id, conversation_key, occurred_at, event, state, reason,
                              reply_event_id, subject)
        SELECT m.event_id, m.conversation_key, m.occurred_at, m.event,
               CASE WHEN t.id IS NOT NULL THEN 'done'
                    WHEN m.skip IS NOT NULL OR {OPTED_OUT} OR {HANDED_OFF} THEN 'skipped'
                    ELSE 'pending' END,
               CASE WHEN t.id IS NOT NULL THEN NULL
                    WHEN m.skip IS NOT NULL THEN split_part(m.skip, ':', 1)
                    WHEN {OPTED_OUT} THEN 'opted_out'
                    WHEN {HANDED_OFF} THEN 'handed_off' END,
               t.id, m.subject
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bytea[], $5::text[],
                    $6::uuid[], $7::uuid[]) WITH ORDINALITY
             AS m(event_id, conversation_key, occurred_at, event, skip, reply, subject, n)
        LEFT JOIN ai_turns t ON t.id = m.reply
        -- Sequence numbers in log order: the join may return rows in any order, and a
        -- thread's messages are answered in sequence order.
        ORDER BY m.n
        ON CONFLICT DO NOTHING
        """,
        [e.event_id for e, _, _ in rows],
        [e.conversation_key for e, _, _ in rows],
        [e.occurred_at for e, _, _ in rows],
        [encode(e) for e, _, _ in rows],
        [skip for _, skip, _ in rows],
        [reply_id_of(e) for e, _, _ in rows],
        [e.subject for e, _, _ in rows],
    )
    if per_minute:
        # After the insert, so messages of this batch count too: the count is the same
        # however the log is cut into polls (one thread's messages are read in order).
        await conn.execute(
            "UPDATE ai_inbox m SET state = 'skipped', reason = 'rate_limited' "
            "WHERE m.event_id = ANY($1::uuid[]) AND m.state = 'pending' AND "
            "(SELECT count(*) FROM ai_inbox o WHERE o.conversation_key = m.conversation_key "
            " AND o.occurred_at > m.occurred_at - interval '1 minute' "
            " AND o.occurred_at <= m.occurred_at) > $2",
            [e.event_id for e, _, _ in rows],
            per_minute,
        )
    await add_turns(
        conn,
        [
            (e.event_id, e.conversation_key, e.occurred_at, "user", text, e.subject)
            for e, _, text in rows
            if text
        ],
    )


def reply_id_of(inbound: Envelope) -> UUID:
    return derived_event_id(REPLY_GENERATED, inbound.event_id)


async def add_turns(
    conn: Connection, turns: Sequence[tuple[UUID, str, Any, str, str, UUID | None]]
) -> None:
    if turns:
        await conn.execute(
            "INSERT INTO ai_turns (id, conversation_key, anchor_at, role, content, subject) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], "
            "$5::text[], $6::uuid[]) ON CONFLICT DO NOTHING",
            *columns(turns, 6),
        )


async def record_replies(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
    """Replies on the log (ours, live or replayed): their inbound messages are answered."""
    await conn.execute(
        "UPDATE ai_inbox SET state = 'done', reason = NULL, reply_event_id = r.id, "
        "lease_token = NULL FROM unnest($1::uuid[], $2::uuid[]) AS r(inbound, id) "
        "WHERE ai_inbox.event_id = r.inbound",
        [e.payload.in_reply_to for e in events],
        [e.event_id for e in events],
    )
    # Anchored at the answered message's arrival, as the worker does, whatever order the
    # topics are read in.
    await add_turns(
        conn,
        [
            (
                e.event_id,
                e.conversation_key,
                e.payload.inbound_at,
                "assistant",
                e.payload.body,
                e.subject,
            )
            for e in events
        ],
    )


async def record_changes(conn: Connection, events: Sequence[Envelope[ConversationChanged]]) -> None:
    await record_closes(conn, SERVICE, events)
    # A reopen undoes the close: messages skipped because of it are answered after all,
    # whether the close was seen before their claim or during their model call (the claim
    # checks again, so those still in a closed conversation stay skipped).
    reopened = {e.conversation_key for e in events if e.payload.action == "reopened"}
    if reopened:
        await conn.execute(
            "UPDATE ai_inbox SET state = 'pending', reason = NULL, due_at = now() "
            "WHERE conversation_key = ANY($1::text[]) AND state = 'skipped' "
            "AND reason = 'closed'",
            list(reopened),
        )


async def claim(pool: Pool, limit: int, lease_s: float, turns: int) -> list[Any]:
    """Lease due messages and read, for each, whether it may be answered and its history:
    the last ``turns`` turns of its conversation (since the close before it, if any)."""
    return await pool.fetch(
        f"""
        WITH picked AS (
            UPDATE ai_inbox i SET due_at = now() + make_interval(secs => $2),
                lease_token = gen_random_uuid()
            FROM (
                SELECT c.event_id FROM ai_inbox c
                WHERE c.state = 'pending' AND c.due_at <= now()
                  AND NOT EXISTS (
                    SELECT 1 FROM ai_inbox e WHERE e.conversation_key = c.conversation_key
                      AND e.state = 'pending' AND e.seq < c.seq)
                ORDER BY c.seq LIMIT $1 FOR UPDATE SKIP LOCKED
            ) due
            WHERE i.event_id = due.event_id
            RETURNING i.event_id, i.lease_token, i.event, i.seq, i.conversation_key,
                i.occurred_at
        )
        SELECT m.event_id, m.lease_token, m.event, {CLOSED} AS closed, {OPTED_OUT} AS opted_out,
          {HANDED_OFF} AS handed_off,
          (SELECT coalesce(json_agg(json_build_array(h.role, h.content)
                                    ORDER BY h.anchor_at, h.second), '[]')
           FROM (SELECT t.role, t.content, t.anchor_at, t.role = 'assistant' AS second
                 FROM ai_turns t
                 WHERE t.conversation_key = m.conversation_key AND t.anchor_at < m.occurred_at
                   AND t.anchor_at > coalesce((
                       SELECT max(c.closed_at) FROM ai_closes c
                       WHERE c.conversation_key = m.conversation_key
                         AND c.closed_at <= m.occurred_at AND NOT c.reopened), '-infinity')
                 ORDER BY t.anchor_at DESC, second DESC LIMIT $3) h) AS history
        FROM picked m ORDER BY m.seq
        """,
        limit,
        lease_s,
        turns,
    )


async def backlog(pool: Pool) -> tuple[int, float]:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(occurred_at)), 0) "
        "AS age FROM ai_inbox WHERE state = 'pending'"
    )
    assert row is not None
    return int(row["n"]), float(row["age"])


def history_of(row: Any) -> list[Turn]:
    return [Turn(role=role, content=content) for role, content in json.loads(row["history"])]


@dataclass(frozen=True)
class Outcome:
    """What one leased message came to: a reply to record, or why there is none."""

    inbound: Envelope[MessageReceived]
    token: UUID
    reply: Envelope[ReplyGenerated] | None
    skip: str | None = None


async def record_outcomes(pool: Pool, outcomes: Sequence[Outcome]) -> dict[UUID, str]:
    """Record outcomes, each fenced by its lease token, in one statement. A reply is kept
    unless the conversation was closed, the participant opted out or a person took over
    meanwhile (checked now, as this commits). Returns the state set per inbound message
    ('done', 'skipped'); a message whose lease was no longer ours is absent."""
    rows = await pool.fetch(
        f"""
        WITH m AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[],
                                 $5::text[], $6::uuid[], $7::text[], $8::bytea[], $10::uuid[])
                AS m(event_id, token, conversation_key, occurred_at, skip, reply_id, body,
                     event, subject)
        ),
        verdict AS (
            SELECT m.*, CASE WHEN m.skip IS NOT NULL THEN m.skip
                             WHEN {CLOSED} THEN 'closed' WHEN {OPTED_OUT} THEN 'opted_out'
                             WHEN {HANDED_OFF} THEN 'handed_off' END AS reason
            FROM m
        ),
        recorded AS (
            UPDATE ai_inbox SET
                state = CASE WHEN v.reason IS NULL THEN 'done' ELSE 'skipped' END,
                reason = v.reason,
                reply_event_id = CASE WHEN v.reason IS NULL THEN v.reply_id END,
                lease_token = NULL
            FROM verdict v
            WHERE ai_inbox.event_id = v.event_id AND ai_inbox.lease_token = v.token
              AND ai_inbox.state = 'pending'
            RETURNING ai_inbox.event_id, ai_inbox.state
        ),
        answered AS (
            SELECT v.* FROM verdict v JOIN recorded r USING (event_id) WHERE r.state = 'done'
        ),
        turn AS (
            INSERT INTO ai_turns (id, conversation_key, anchor_at, role, content, subject)
            -- The participant may have been erased during the model call.
            SELECT reply_id, conversation_key, occurred_at, 'assistant',
                   CASE WHEN EXISTS (SELECT 1 FROM ai_erased x WHERE x.subject = answered.subject)
                        THEN $11 ELSE body END, subject
            FROM answered
            ON CONFLICT DO NOTHING
        ),
        outbox AS (
            INSERT INTO ai_outbox (topic, event) SELECT $9, event FROM answered
        )
        SELECT event_id, state FROM recorded
        """,
        [o.inbound.event_id for o in outcomes],
        [o.token for o in outcomes],
        [o.inbound.conversation_key for o in outcomes],
        [o.inbound.occurred_at for o in outcomes],
        [o.skip for o in outcomes],
        [o.reply.event_id if o.reply else None for o in outcomes],
        [o.reply.payload.body if o.reply else None for o in outcomes],
        [encode(o.reply) if o.reply else None for o in outcomes],
        REPLY_GENERATED,
        [o.inbound.subject for o in outcomes],
        ERASED,
    )
    return {row["event_id"]: row["state"] for row in rows}
