"""Calls and emails in the history: each is one entry of its thread beside the messages.

A call is one entry however many status callbacks it has (its id from the call's SID): it
sits where its first callback arrived and shows its furthest status (started, then completed
or missed), so the entry is the same whichever of its callbacks is applied first. An email is
one inbound entry in the thread of its sender and our address it went to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import uuid5

from parley_conversation.store import Thread, upsert_threads
from parley_shared.conversations import place_all
from parley_shared.db import Connection, columns
from parley_shared.events import CallUpdated, EmailReceived, Envelope
from parley_shared.identity import PARLEY_NAMESPACE
from parley_shared.status import call_progress


def _furthest(events: Sequence[Envelope[CallUpdated]]) -> Envelope[CallUpdated]:
    """The callback that says most about a call."""
    return max(
        events, key=lambda e: call_progress(e.payload.outcome, e.occurred_at, e.payload.status)
    )


async def add_calls(conn: Connection, events: Sequence[Envelope[CallUpdated]]) -> None:
    by_call: dict[str, list[Envelope[CallUpdated]]] = {}
    for event in events:
        by_call.setdefault(event.payload.call_sid, []).append(event)
    firsts = [min(calls, key=lambda e: e.occurred_at) for calls in by_call.values()]
    await upsert_threads(conn, [_thread(e, "sms") for e in firsts])
    placed = await place_all(
        conn, "conversation_conversations", [(e.conversation_key, e.occurred_at) for e in firsts]
    )
    rows = []
    for first, conversation in zip(firsts, placed, strict=True):
        callbacks = by_call[first.payload.call_sid]
        last = _furthest(callbacks)
        p = last.payload
        details = {"outcome": p.outcome, "duration_s": p.duration_s, "provider": p.provider}
        rows.append(
            (
                uuid5(PARLEY_NAMESPACE, f"call/{p.call_sid}"),
                first.conversation_key,
                conversation,
                p.direction,
                first.occurred_at,
                # The latest callback's time, as ``greatest`` keeps it below.
                max(e.occurred_at for e in callbacks),
                p.call_sid,
                first.payload.status,
                p.status,
                json.dumps(details),
                first.subject,
            )
        )
    await conn.execute(
        "INSERT INTO conversation_messages AS m (id, conversation_key, conversation_id, "
        "direction, anchor_at, occurred_at, body, kind, message_sid, initial_status, status, "
        "call, subject) SELECT id, key, conversation, direction, anchor, at, '', 'call', sid, "
        "initial, status, call::jsonb, subject FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
        "$4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], "
        "$10::text[], $11::uuid[]) AS u(id, key, conversation, direction, anchor, at, sid, "
        "initial, status, call, subject) ON CONFLICT (id) DO UPDATE SET "
        # Where its first callback puts it, whichever callback came first.
        "conversation_id = CASE WHEN EXCLUDED.anchor_at < m.anchor_at "
        "THEN EXCLUDED.conversation_id ELSE m.conversation_id END, "
        "anchor_at = least(m.anchor_at, EXCLUDED.anchor_at), "
        "initial_status = CASE WHEN EXCLUDED.anchor_at < m.anchor_at "
        "THEN EXCLUDED.initial_status ELSE m.initial_status END, "
        # Its furthest status: one that ends the call beats one under way, else the later.
        "status = CASE WHEN (EXCLUDED.call->>'outcome' <> 'started', EXCLUDED.occurred_at, "
        "EXCLUDED.status) > (m.call->>'outcome' <> 'started', m.occurred_at, m.status) "
        "THEN EXCLUDED.status ELSE m.status END, "
        "call = CASE WHEN (EXCLUDED.call->>'outcome' <> 'started', EXCLUDED.occurred_at, "
        "EXCLUDED.status) > (m.call->>'outcome' <> 'started', m.occurred_at, m.status) "
        "THEN EXCLUDED.call ELSE m.call END, "
        "occurred_at = greatest(m.occurred_at, EXCLUDED.occurred_at)",
        *columns(rows, 11),
    )


async def add_emails(conn: Connection, events: Sequence[Envelope[EmailReceived]]) -> None:
    await upsert_threads(conn, [_thread(e, "email") for e in events])
    placed = await place_all(
        conn, "conversation_conversations", [(e.conversation_key, e.occurred_at) for e in events]
    )
    rows = [
        (
            e.event_id,
            e.conversation_key,
            conversation,
            e.occurred_at,
            e.payload.body,
            json.dumps(
                {
                    "subject": e.payload.subject,
                    "sender_name": e.payload.sender_name,
                    "attachments": e.payload.attachments,
                }
            ),
            e.subject,
        )
        for e, conversation in zip(events, placed, strict=True)
    ]
    await conn.execute(
        "INSERT INTO conversation_messages (id, conversation_key, conversation_id, direction, "
        "anchor_at, occurred_at, body, kind, initial_status, status, email, subject) "
        "SELECT id, key, conversation, 'inbound', at, at, body, 'email', 'received', "
        "'received', email::jsonb, subject FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
        "$4::timestamptz[], $5::text[], $6::text[], $7::uuid[]) "
        "AS u(id, key, conversation, at, body, email, subject) ON CONFLICT DO NOTHING",
        *columns(rows, 7),
    )


def _thread(event: Envelope[CallUpdated] | Envelope[EmailReceived], channel: str) -> Thread:
    p = event.payload
    return (
        event.conversation_key,
        event.account_sid,
        channel,
        p.our_address,
        p.participant,
        None,
        event.subject,
        p.provider,
    )
