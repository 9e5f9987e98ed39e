"""Read models of the conversation API: pages of conversations and of their messages.

Routes (``api.py``) turn cursors into the keys these take and rows into response models;
nothing here knows about HTTP. Pages are keyset pages: a key after which the next page
starts, never an offset.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from parley_conversation.agents import HANDOFF_JOIN, LAST_INBOUND
from parley_conversation.core import handoff_state
from parley_shared.db import Pool
from parley_shared.whatsapp import window_closes_at

CONVERSATION_SQL = f"""
SELECT c.id, t.channel, coalesce(t.provider, 'twilio') AS provider, t.our_address,
       t.participant, t.profile_name, t.opted_out,
       c.opened_at, c.closed_at,
       CASE WHEN c.closed_at IS NULL THEN 'open' ELSE 'closed' END AS state,
       m.first_at AS first_activity_at, m.last_at AS last_activity_at,
       coalesce(m.n_in, 0) AS messages_in, coalesce(m.n_out, 0) AS messages_out,
       coalesce(m.n_calls, 0) AS calls, coalesce(m.n_emails, 0) AS emails,
       h.handoff_action, h.handoff_at, h.handoff_agent,
       {LAST_INBOUND} AS last_inbound_at
FROM conversation_conversations c
JOIN conversation_threads t USING (conversation_key)
{HANDOFF_JOIN}
LEFT JOIN LATERAL (
    SELECT min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           count(*) FILTER (WHERE direction = 'inbound' AND kind = 'message') AS n_in,
           count(*) FILTER (WHERE direction = 'outbound' AND kind = 'message') AS n_out,
           count(*) FILTER (WHERE kind = 'call') AS n_calls,
           count(*) FILTER (WHERE kind = 'email') AS n_emails
    FROM conversation_messages WHERE conversation_id = c.id
) m ON true
"""


async def conversations(
    pool: Pool,
    *,
    state: Literal["open", "closed"] | None,
    channel: str | None,
    participant: str | None,
    handoff: str | None = None,
    before: tuple[datetime, UUID] | None,
    limit: int,
    window_s: float,
    addresses: list[str] | None = None,
    our_number: str | None = None,
    order: Literal["opened", "activity"] = "opened",
) -> list[dict[str, Any]]:
    """Newest first (opened, or by last activity), up to ``limit``, those before ``before``
    (that time, id), on ``addresses`` (our numbers) if given."""
    when = "c.opened_at" if order == "opened" else "coalesce(c.last_activity_at, c.opened_at)"
    where: list[str] = ["true"]
    args: list[Any] = []
    if our_number is not None:
        args.append(our_number.removeprefix("whatsapp:"))
        where.append(f"replace(t.our_address, 'whatsapp:', '') = ${len(args)}")
    if addresses is not None:
        args.append(addresses)
        where.append(f"t.our_address = ANY(${len(args)}::text[])")
    if state is not None:
        where.append("c.closed_at IS " + ("NULL" if state == "open" else "NOT NULL"))
    if channel is not None:
        args.append(channel)
        where.append(f"t.channel = ${len(args)}")
    if participant is not None:
        args.append(participant.removeprefix("whatsapp:"))
        where.append(f"replace(t.participant, 'whatsapp:', '') = ${len(args)}")
    if before is not None:
        args += list(before)
        where.append(f"({when}, c.id) < (${len(args) - 1}, ${len(args)})")
    if handoff is not None:
        args.append(handoff)
        where.append(
            f"coalesce(CASE h.handoff_action WHEN 'taken_over' THEN 'agent' "
            f"WHEN 'requested' THEN 'requested' END, 'ai') = ${len(args)}"
        )
    args.append(limit)
    rows = await pool.fetch(
        f"{CONVERSATION_SQL} WHERE {' AND '.join(where)} "
        f"ORDER BY {when} DESC, c.id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_conversation(row, window_s) for row in rows]


def _conversation(row: Any, window_s: float) -> dict[str, Any]:
    record = dict(row)
    record["handoff"] = handoff_state(record.pop("handoff_action"))
    record["whatsapp_window_closes_at"] = window_closes_at(
        record["channel"], record.pop("last_inbound_at"), window_s
    )
    return record


async def conversation(pool: Pool, conversation_id: UUID, window_s: float) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"{CONVERSATION_SQL} WHERE c.id = $1", conversation_id)
    return _conversation(row, window_s) if row is not None else None


async def opt_outs(pool: Pool, addresses: list[str] | None) -> list[dict[str, Any]]:
    """Participants who opted out (STOP, or Twilio's 21610) and have not opted back in."""
    rows = await pool.fetch(
        "SELECT participant, channel, our_address, opt_changed_at AS since "
        "FROM conversation_threads WHERE opted_out "
        "AND ($1::text[] IS NULL OR our_address = ANY($1::text[])) "
        "ORDER BY opt_changed_at DESC NULLS LAST LIMIT 1000",
        addresses,
    )
    return [dict(row) for row in rows]


async def address_of(pool: Pool, conversation_id: UUID) -> str | None:
    """The number of ours a conversation is with."""
    address: str | None = await pool.fetchval(
        "SELECT t.our_address FROM conversation_conversations c "
        "JOIN conversation_threads t USING (conversation_key) WHERE c.id = $1",
        conversation_id,
    )
    return address


async def exists(pool: Pool, conversation_id: UUID) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM conversation_conversations WHERE id = $1", conversation_id
        )
    )


async def messages(
    pool: Pool, conversation_id: UUID, *, after: tuple[datetime, str, UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Oldest first (by the arrival time a message is placed by), up to ``limit``, after the
    key ``after`` (anchor_at, direction, id); each with the history of its statuses."""
    args: list[Any] = [conversation_id]
    later = ""
    if after is not None:
        args += list(after)
        later = "AND (m.anchor_at, m.direction, m.id) > ($2, $3, $4)"
    args.append(limit)
    rows = await pool.fetch(
        f"""
        SELECT m.id, m.direction, m.body, m.media, m.message_sid, m.status, m.error_code, m.ai,
               m.agent, m.content_sid, m.location, m.kind, m.call, m.email,
               m.occurred_at AS at, m.anchor_at,
               coalesce((SELECT json_agg(json_build_object('status', s.status, 'at', s.at,
                                 'error_code', s.error_code) ORDER BY s.at)
                         FROM conversation_statuses s WHERE s.message_sid = m.message_sid),
                        '[]') AS status_history
        FROM conversation_messages m WHERE m.conversation_id = $1 {later}
        ORDER BY m.anchor_at, m.direction, m.id LIMIT ${len(args)}
        """,
        *args,
    )
    found = []
    for row in rows:
        record = dict(row)
        for field in ("media", "ai", "status_history", "location", "call", "email"):
            if isinstance(record[field], str):
                record[field] = json.loads(record[field])
        found.append(record)
    return found


async def media_url(pool: Pool, conversation_id: UUID, message_id: UUID, index: int) -> str | None:
    url: str | None = await pool.fetchval(
        "SELECT media -> $3::int ->> 'url' FROM conversation_messages "
        "WHERE id = $2 AND conversation_id = $1",
        conversation_id,
        message_id,
        index,
    )
    return url
