"""The conversation service's writes (its tables: ``tables``), and the rules that place
messages in conversations.

A conversation of a thread (one conversation key) covers a span of time: from the message
that opened it until it is closed. A message belongs to the conversation whose span holds the
time it arrived (a reply: the time its inbound arrived). Applying that rule in the handlers
of every event, whichever topic delivers first, makes a rebuild from the log land on the same
conversations as live processing did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from parley_shared import erasure
from parley_shared.conversations import place_all, rewrite_thread
from parley_shared.db import Connection, columns
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    HandoffChanged,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    ReplyGenerated,
    StatusUpdated,
)
from parley_shared.status import fold_statuses

Thread = tuple[str, str, str, str, str, str | None, UUID | None, str | None]
"""(conversation key, account SID, channel, our address, participant, profile name, subject,
provider: None from events that do not say)"""


def thread_of(
    event: Envelope[
        MessageReceived
        | ReplyGenerated
        | MessageSent
        | ConversationChanged
        | OutboundRequested
        | HandoffChanged
    ],
    profile_name: str | None = None,
) -> Thread:
    p = event.payload
    return (
        event.conversation_key,
        event.account_sid,
        p.channel,
        p.our_address,
        p.participant,
        profile_name,
        event.subject,
        getattr(p, "provider", None),
    )


async def upsert_threads(conn: Connection, threads: Sequence[Thread]) -> None:
    """Create threads not seen before; a known profile name replaces an older one. Whose
    the participant and the profile name are is kept (``subject``, ``profile_subject``): an
    erasure forgets exactly what came from the erased participant's events."""
    latest: dict[str, list[Any]] = {}
    for key, account, channel, ours, participant, name, subject, provider in threads:
        known = latest.get(key)
        if known is None:
            latest[key] = [key, account, channel, ours, participant, name, subject]
            latest[key] += [subject if name is not None else None, provider]
            continue
        known[8] = known[8] or provider
        # As if applied one by one, as the statement below applies them to a stored thread.
        if known[4] == erasure.ERASED and participant != erasure.ERASED:
            known[4], known[6] = participant, subject
        if name is not None:
            known[5], known[7] = name, subject
    rows = [tuple(row) for _, row in sorted(latest.items())]
    threads_columns = columns(rows, 9)
    await conn.execute(
        "INSERT INTO conversation_threads (conversation_key, account_sid, channel, our_address,"
        " participant, profile_name, subject, profile_subject, provider) SELECT * FROM unnest("
        "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], "
        "$8::uuid[], $10::text[]) ON CONFLICT (conversation_key) DO UPDATE SET "
        # Whichever event said it first: a thread's provider never changes (its key holds
        # the provider's account).
        "provider = coalesce(conversation_threads.provider, EXCLUDED.provider), "
        # A participant erased and writing again is known by number again, under a new key.
        "participant = CASE WHEN conversation_threads.participant = $9 AND "
        "EXCLUDED.participant <> $9 THEN EXCLUDED.participant "
        "ELSE conversation_threads.participant END, "
        "subject = CASE WHEN conversation_threads.participant = $9 AND "
        "EXCLUDED.participant <> $9 THEN EXCLUDED.subject ELSE conversation_threads.subject END, "
        "profile_name = coalesce(EXCLUDED.profile_name, conversation_threads.profile_name), "
        "profile_subject = CASE WHEN EXCLUDED.profile_name IS NULL "
        "THEN conversation_threads.profile_subject ELSE EXCLUDED.profile_subject END",
        *threads_columns[:8],
        erasure.ERASED,
        threads_columns[8],
    )


async def place(
    conn: Connection,
    events: Sequence[Envelope[Any]],
    anchors: Sequence[datetime],
    profile_names: Sequence[str | None] | None = None,
) -> list[UUID]:
    """Create the threads of ``events`` not seen before, and return the conversation each
    belongs to by its anchor time (arrival; a reply's: its inbound's)."""
    names = profile_names or [None] * len(events)
    await upsert_threads(conn, [thread_of(e, n) for e, n in zip(events, names, strict=True)])
    return await place_all(
        conn,
        "conversation_conversations",
        [(e.conversation_key, at) for e, at in zip(events, anchors, strict=True)],
    )


async def add_inbound(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
    placed = await place(
        conn, events, [e.occurred_at for e in events], [e.payload.profile_name for e in events]
    )
    rows = [
        (
            e.event_id,
            e.conversation_key,
            conversation,
            e.occurred_at,
            e.payload.body,
            json.dumps([m.model_dump() for m in e.payload.media]),
            e.payload.message_sid,
            e.payload.location.model_dump_json() if e.payload.location else None,
            e.subject,
        )
        for e, conversation in zip(events, placed, strict=True)
    ]
    await conn.execute(
        "INSERT INTO conversation_messages (id, conversation_key, conversation_id, direction, "
        "anchor_at, occurred_at, body, media, message_sid, initial_status, status, location, "
        "subject) SELECT id, key, conversation, 'inbound', at, at, body, media::jsonb, sid, "
        "'received', 'received', location::jsonb, subject FROM unnest($1::uuid[], $2::text[], "
        "$3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], "
        "$9::uuid[]) AS u(id, key, conversation, at, body, media, sid, location, subject) "
        "ON CONFLICT DO NOTHING",
        *columns(rows, 9),
    )


def _ai(p: ReplyGenerated) -> str:
    return json.dumps(
        {
            "source": p.source,
            "model": p.model,
            "prompt_tokens": p.prompt_tokens,
            "completion_tokens": p.completion_tokens,
            "latency_ms": p.latency_ms,
            "segments": p.segments,
            "encoding": p.encoding,
            "in_reply_to": str(p.in_reply_to),
        }
    )


async def add_replies(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
    placed = await place(conn, events, [e.payload.inbound_at for e in events])
    rows = [
        (
            e.event_id,
            e.conversation_key,
            conversation,
            e.payload.inbound_at,
            e.occurred_at,
            e.payload.body,
            _ai(e.payload),
            e.subject,
        )
        for e, conversation in zip(events, placed, strict=True)
    ]
    await conn.execute(
        "INSERT INTO conversation_messages (id, conversation_key, conversation_id, direction, "
        "anchor_at, occurred_at, body, ai, initial_status, status, subject) "
        "SELECT id, key, conversation, 'outbound', anchor, at, body, ai::jsonb, 'generated', "
        "'generated', subject FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
        "$4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $8::uuid[]) "
        "AS u(id, key, conversation, anchor, at, body, ai, subject) "
        "ON CONFLICT (id) DO UPDATE SET conversation_id = EXCLUDED.conversation_id, "
        "anchor_at = EXCLUDED.anchor_at, occurred_at = EXCLUDED.occurred_at, "
        "body = EXCLUDED.body, ai = EXCLUDED.ai",
        *columns(rows, 8),
    )


async def record_sent(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
    """Send outcomes; one may arrive before its reply on a replay (another topic), and then
    stands in for it until the reply comes."""
    latest = {e.payload.reply_event_id: e for e in events}
    known = {
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM conversation_messages WHERE id = ANY($1::uuid[])", list(latest)
        )
    }
    early = [e for e in latest.values() if e.payload.reply_event_id not in known]
    if early:
        anchors = [e.payload.inbound_at or e.payload.requested_at or e.occurred_at for e in early]
        placed = await place(conn, early, anchors)
        rows = [
            (
                e.payload.reply_event_id,
                e.conversation_key,
                conversation,
                at,
                e.occurred_at,
                e.payload.body,
                e.subject,
            )
            for e, conversation, at in zip(early, placed, anchors, strict=True)
        ]
        await conn.execute(
            "INSERT INTO conversation_messages (id, conversation_key, conversation_id, "
            "direction, anchor_at, occurred_at, body, subject) SELECT id, key, conversation, "
            "'outbound', anchor, at, body, subject FROM unnest($1::uuid[], $2::text[], "
            "$3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::uuid[]) "
            # The reply may be committing this moment (another replica): it wins.
            "AS u(id, key, conversation, anchor, at, body, subject) ON CONFLICT (id) DO NOTHING",
            *columns(rows, 7),
        )
    outcomes = [
        (
            e.payload.reply_event_id,
            e.payload.message_sid,
            e.payload.status,
            e.payload.error_code,
            e.payload.content_sid,
        )
        for e in latest.values()
    ]
    # Without a SID (Twilio refused it) no callback will come: the outcome is the status.
    await conn.execute(
        "UPDATE conversation_messages m SET message_sid = u.sid, initial_status = u.status, "
        "error_code = u.error, content_sid = u.content, "
        "status = CASE WHEN u.sid IS NULL THEN u.status ELSE m.status END "
        "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[]) "
        "AS u(id, sid, status, error, content) WHERE m.id = u.id",
        *columns(outcomes, 5),
    )
    sids = [sid for _, sid, _, _, _ in outcomes if sid]
    if sids:
        await refresh_statuses(conn, sids)


async def record_statuses(conn: Connection, events: Sequence[Envelope[StatusUpdated]]) -> None:
    await conn.execute(
        "INSERT INTO conversation_statuses (message_sid, status, at, error_code) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[]) "
        "ON CONFLICT DO NOTHING",
        [e.payload.message_sid for e in events],
        [e.payload.status for e in events],
        [e.occurred_at for e in events],
        [e.payload.error_code for e in events],
    )
    await refresh_statuses(conn, list({e.payload.message_sid for e in events}))


async def refresh_statuses(conn: Connection, sids: Sequence[str]) -> None:
    """Recompute messages' status from every callback seen, in the order Twilio sent them.
    A callback that beat its message.sent is applied when that arrives."""
    rows = await conn.fetch(
        "SELECT m.id, m.initial_status, "
        "array_agg(s.status ORDER BY s.at, s.status) AS seen, "
        "array_agg(s.error_code ORDER BY s.at, s.status) AS errors "
        "FROM conversation_messages m JOIN conversation_statuses s USING (message_sid) "
        "WHERE m.message_sid = ANY($1::text[]) GROUP BY m.id, m.initial_status",
        list(sids),
    )
    updates = []
    for row in rows:
        status = fold_statuses(row["initial_status"], row["seen"])
        error = next(
            (code for seen, code in zip(row["seen"], row["errors"], strict=True) if seen == status),
            None,
        )
        updates.append((row["id"], status, error))
    if updates:
        await conn.execute(
            "UPDATE conversation_messages m SET status = u.status, "
            "error_code = coalesce(u.error, m.error_code) "
            "FROM unnest($1::uuid[], $2::text[], $3::int[]) AS u(id, status, error) "
            "WHERE m.id = u.id",
            *columns(updates, 3),
        )


async def set_opt_out(conn: Connection, key: str, opted_out: bool, at: datetime) -> None:
    await conn.execute(
        "UPDATE conversation_threads SET opted_out = $2, opt_changed_at = $3 "
        "WHERE conversation_key = $1 AND (opt_changed_at IS NULL OR opt_changed_at <= $3)",
        key,
        opted_out,
        at,
    )


async def close(conn: Connection, conversation: UUID, key: str, at: datetime) -> None:
    """Close at ``at``; messages after it belong to the thread's next conversation. A close
    read before the conversation's messages (a replay, another topic) is kept as a
    conversation that they extend back to where it opened."""
    await conn.execute(
        "INSERT INTO conversation_conversations (id, conversation_key, opened_at, closed_at) "
        "VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO UPDATE SET closed_at = EXCLUDED.closed_at",
        conversation,
        key,
        at,
    )
    await _rewrite(conn, key)


async def reopen(conn: Connection, conversation: UUID) -> None:
    """Undo a close: the conversations after it (if a replay made any) merge back into it."""
    key = await conn.fetchval(
        "UPDATE conversation_conversations SET closed_at = NULL WHERE id = $1 "
        "RETURNING conversation_key",
        conversation,
    )
    if key is not None:
        await _rewrite(conn, key)


async def _rewrite(conn: Connection, key: str) -> None:
    messages = await conn.fetch(
        "SELECT id, anchor_at FROM conversation_messages WHERE conversation_key = $1", key
    )
    placed = await rewrite_thread(
        conn, "conversation_conversations", key, [m["anchor_at"] for m in messages]
    )
    if messages:
        await conn.execute(
            "UPDATE conversation_messages m SET conversation_id = x.conversation "
            "FROM unnest($1::uuid[], $2::uuid[]) AS x(id, conversation) "
            "WHERE m.id = x.id AND m.conversation_id <> x.conversation",
            [m["id"] for m in messages],
            placed,
        )
