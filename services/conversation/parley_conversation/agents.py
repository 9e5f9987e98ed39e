"""Tables and SQL of what people do in conversations: operators' messages and handoffs.

A handoff change names its conversation (ids are deterministic), so it is kept by id and
needs no placing; a participant's request for a person is a flag on their message, which
moves with the message if a replay re-places it. The state of a conversation is the latest
of both, by time, so any read order lands on the same state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from parley_conversation.store import place
from parley_shared.db import Connection, Pool, columns
from parley_shared.events import Envelope, HandoffChanged, Media, OutboundRequested

# The latest handoff change or request of conversation ``c``, as ``h``: handoff_action,
# handoff_at, handoff_agent (no row: the AI has always had it).
HANDOFF_JOIN = """
LEFT JOIN LATERAL (
    SELECT x.action AS handoff_action, x.at AS handoff_at, x.agent AS handoff_agent FROM (
        SELECT h.action, h.at, h.agent FROM conversation_handoffs h
        WHERE h.conversation_id = c.id
        UNION ALL
        SELECT 'requested', m.anchor_at, NULL FROM conversation_messages m
        WHERE m.conversation_id = c.id AND m.asks_human
    ) x ORDER BY x.at DESC LIMIT 1
) h ON true
"""


# When the participant of conversation ``c``'s thread last wrote (WhatsApp's window opens then).
LAST_INBOUND = """(SELECT max(i.occurred_at) FROM conversation_messages i
    WHERE i.conversation_key = c.conversation_key AND i.direction = 'inbound'
    AND i.kind = 'message')"""


async def add_requests(conn: Connection, events: Sequence[Envelope[OutboundRequested]]) -> None:
    """Operators' messages, placed by the time they were asked for."""
    placed = await place(conn, events, [e.occurred_at for e in events])
    rows = [
        (
            e.event_id,
            e.conversation_key,
            conversation,
            e.occurred_at,
            e.payload.body,
            json.dumps([Media(url=url).model_dump() for url in e.payload.media_urls]),
            e.payload.agent,
            e.subject,
        )
        for e, conversation in zip(events, placed, strict=True)
    ]
    # An outcome read first (another topic) made the row: this fills in who wrote it.
    await conn.execute(
        "INSERT INTO conversation_messages (id, conversation_key, conversation_id, direction, "
        "anchor_at, occurred_at, body, media, agent, initial_status, status, subject) "
        "SELECT id, key, conversation, 'outbound', at, at, body, media::jsonb, agent, "
        "'requested', 'requested', subject FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
        "$4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::uuid[]) "
        "AS u(id, key, conversation, at, body, media, agent, subject) "
        "ON CONFLICT (id) DO UPDATE SET agent = EXCLUDED.agent, media = EXCLUDED.media, "
        "occurred_at = EXCLUDED.occurred_at, anchor_at = EXCLUDED.anchor_at, "
        "conversation_id = EXCLUDED.conversation_id",
        *columns(rows, 8),
    )


async def add_handoffs(conn: Connection, events: Sequence[Envelope[HandoffChanged]]) -> None:
    await conn.execute(
        "INSERT INTO conversation_handoffs (conversation_id, at, action, agent) "
        "SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) "
        "ON CONFLICT DO NOTHING",
        [e.payload.conversation_id for e in events],
        [e.occurred_at for e in events],
        [e.payload.action for e in events],
        [e.payload.agent for e in events],
    )


async def flag_requests(conn: Connection, message_ids: Sequence[object]) -> None:
    """Inbound messages in which the participant asked for a person."""
    if message_ids:
        await conn.execute(
            "UPDATE conversation_messages SET asks_human = true WHERE id = ANY($1::uuid[])",
            list(message_ids),
        )


async def timeline(pool: Pool, conversation_id: UUID) -> list[dict[str, Any]]:
    """Requests for a person, takeovers and hand-backs of a conversation, oldest first."""
    rows = await pool.fetch(
        "SELECT action, at, agent FROM conversation_handoffs WHERE conversation_id = $1 "
        "UNION ALL SELECT 'requested', anchor_at, NULL FROM conversation_messages "
        "WHERE conversation_id = $1 AND asks_human ORDER BY 2, 1",
        conversation_id,
    )
    return [dict(row) for row in rows]
