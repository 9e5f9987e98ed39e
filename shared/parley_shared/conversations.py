"""The one rule that splits a thread into conversations, for every projection that needs it.

A conversation covers the time from the message that opened it until an operator closed it;
a message belongs to the conversation whose span holds its arrival time. Deciding by time,
not by the order topics happen to be read in, is what lets a replay land on the same
conversations as live processing did.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID, uuid5

from parley_shared.db import Connection
from parley_shared.identity import PARLEY_NAMESPACE


def conversation_id_for(first_inbound: UUID) -> UUID:
    """A conversation is named by the message that opened it: the same on every replay."""
    return uuid5(PARLEY_NAMESPACE, f"conversation/{first_inbound}")


async def conversation_at(
    conn: Connection,
    table: str,
    key: str,
    at: datetime,
    opener: UUID,
    columns: Mapping[str, object] | None = None,
) -> UUID:
    """The id of the conversation in ``table`` that a message of thread ``key`` arriving at
    ``at`` belongs to, creating it (named after ``opener``) when the message opens one.

    ``table`` has ``id``, ``conversation_key``, ``opened_at`` and ``closed_at``; ``columns``
    are further values to write when a conversation is created or extended.
    """
    extra = dict(columns or {})
    current = await conn.fetchrow(
        f"SELECT id, closed_at FROM {table} WHERE conversation_key = $1 AND opened_at <= $2 "
        "ORDER BY opened_at DESC LIMIT 1",
        key,
        at,
    )
    if current is not None and (current["closed_at"] is None or current["closed_at"] > at):
        return UUID(str(current["id"]))
    later = await conn.fetchval(
        f"SELECT id FROM {table} WHERE conversation_key = $1 AND opened_at > $2 "
        "ORDER BY opened_at LIMIT 1",
        key,
        at,
    )
    if later is not None:
        # Replayed out of arrival order: this message came first, so it opened that one.
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(extra, start=3))
        await conn.execute(
            f"UPDATE {table} SET opened_at = $2{', ' + sets if sets else ''} WHERE id = $1",
            later,
            at,
            *extra.values(),
        )
        return UUID(str(later))
    new_id = conversation_id_for(opener)
    names = ", ".join(["id", "conversation_key", "opened_at", *extra])
    values = ", ".join(f"${i}" for i in range(1, 4 + len(extra)))
    await conn.execute(
        f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING",
        new_id,
        key,
        at,
        *extra.values(),
    )
    return new_id
