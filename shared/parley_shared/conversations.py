"""The one rule that splits a thread into conversations, for every projection that needs it.

A conversation covers the time from its first message until an operator closed it; a message
belongs to the conversation whose span holds its arrival time (a reply: the arrival time of
the message it answers, so it is always in that message's conversation). Names never depend
on which event was read first: a thread's first conversation is named after the thread, and
every later one after the conversation whose close it follows. That is what lets a replay of
the topics, read in any interleaving, land on the same conversations as live processing did.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID, uuid5

from parley_shared.db import Connection
from parley_shared.events import ConversationChanged, Envelope
from parley_shared.identity import PARLEY_NAMESPACE


def first_conversation_id(key: str) -> UUID:
    return uuid5(PARLEY_NAMESPACE, f"conversation/{key}/first")


def following_id(closed: UUID) -> UUID:
    """The conversation that a thread's next message opens after ``closed`` was closed."""
    return uuid5(PARLEY_NAMESPACE, f"conversation/after/{closed}")


@dataclass(frozen=True)
class Span:
    id: UUID
    opened_at: datetime
    closed_at: datetime | None


def place(spans: Sequence[Span], key: str, at: datetime) -> Span:
    """The conversation of thread ``key`` (its ``spans``, sorted by ``opened_at``) that a
    message arriving at ``at`` belongs to, as it must be after the message: a span of
    ``spans`` as it is, one of them opened earlier (read out of arrival order, this message
    came first), or a new one."""
    index = bisect.bisect_right([s.opened_at for s in spans], at)
    current = spans[index - 1] if index else None
    if current is not None and (current.closed_at is None or current.closed_at > at):
        return current
    if index < len(spans):
        return replace(spans[index], opened_at=at)
    name = following_id(current.id) if current is not None else first_conversation_id(key)
    return Span(name, at, None)


async def place_all(
    conn: Connection,
    table: str,
    messages: Sequence[tuple[str, datetime]],
    columns: Mapping[str, Mapping[str, object]] | None = None,
) -> list[UUID]:
    """Place every (thread key, arrival time) of a batch, in order; returns their
    conversation ids. ``table`` has ``id``, ``conversation_key``, ``opened_at`` and
    ``closed_at``; ``columns`` gives, per key, further values for conversations it creates.
    Two statements, however many messages."""
    if not messages:
        return []
    spans: dict[str, list[Span]] = defaultdict(list)
    for row in await conn.fetch(
        f"SELECT id, conversation_key, opened_at, closed_at FROM {table} "
        "WHERE conversation_key = ANY($1::text[]) ORDER BY opened_at, id",
        list({key for key, _ in messages}),
    ):
        spans[row["conversation_key"]].append(Span(row["id"], row["opened_at"], row["closed_at"]))
    changed: dict[UUID, tuple[str, Span]] = {}
    placed = []
    for key, at in messages:
        thread = spans[key]
        span = place(thread, key, at)
        if span not in thread:
            thread[:] = sorted([s for s in thread if s.id != span.id] + [span], key=_order)
            changed[span.id] = (key, span)
        placed.append(span.id)
    if changed:
        extra = sorted({name for values in (columns or {}).values() for name in values})
        names = ", ".join(["id", "conversation_key", "opened_at", *extra])
        types = ["uuid[]", "text[]", "timestamptz[]", *("text[]" for _ in extra)]
        rows = list(changed.values())
        await conn.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest("
            + ", ".join(f"${i}::{t}" for i, t in enumerate(types, start=1))
            + f") ON CONFLICT (id) DO UPDATE SET opened_at = least({table}.opened_at, "
            "EXCLUDED.opened_at)",
            [span.id for _, span in rows],
            [key for key, _ in rows],
            [span.opened_at for _, span in rows],
            *([(columns or {}).get(key, {}).get(name) for key, _ in rows] for name in extra),
        )
    return placed


def _order(span: Span) -> tuple[datetime, str]:
    return span.opened_at, str(span.id)


def membership(
    key: str, closes: Sequence[tuple[UUID, datetime]], anchors: Sequence[datetime]
) -> tuple[list[UUID], list[Span]]:
    """A whole thread from scratch: each closed conversation covers the time from the close
    before it up to its own close, and the open one what comes after the last close. Returns
    the conversation of every anchor, and every conversation (opened at its first message, or
    at its close when it has none; the open one only when it has messages)."""
    ordered = sorted(closes, key=lambda c: (c[1], str(c[0])))
    ends = [closed_at for _, closed_at in ordered]
    tail = following_id(ordered[-1][0]) if ordered else first_conversation_id(key)
    ids = [*(cid for cid, _ in ordered), tail]
    placed = [ids[bisect.bisect_right(ends, at)] for at in anchors]
    first: dict[UUID, datetime] = {}
    for cid, at in zip(placed, anchors, strict=True):
        first[cid] = min(at, first.get(cid, at))
    spans = [Span(cid, min(first.get(cid, end), end), end) for cid, end in ordered]
    if tail in first:
        spans.append(Span(tail, first[tail], None))
    return placed, spans


async def rewrite_thread(
    conn: Connection,
    table: str,
    key: str,
    anchors: Sequence[datetime],
    columns: Mapping[str, object] | None = None,
) -> list[UUID]:
    """Recompute a thread's conversations in ``table`` after a close or reopen (which can
    move messages between conversations); returns the conversation of every anchor."""
    closes = [
        (row["id"], row["closed_at"])
        for row in await conn.fetch(
            f"SELECT id, closed_at FROM {table} WHERE conversation_key = $1 "
            "AND closed_at IS NOT NULL",
            key,
        )
    ]
    placed, spans = membership(key, closes, anchors)
    await conn.execute(
        f"DELETE FROM {table} WHERE conversation_key = $1 AND NOT id = ANY($2::uuid[])",
        key,
        [s.id for s in spans],
    )
    extra = dict(columns or {})
    names = ", ".join(["id", "conversation_key", "opened_at", "closed_at", *extra])
    values = ", ".join(f"${i}" for i in range(1, 5 + len(extra)))
    for span in spans:
        await conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE "
            "SET opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at",
            span.id,
            key,
            span.opened_at,
            span.closed_at,
            *extra.values(),
        )
    return placed


# Services that must not answer into a closed conversation (ai, sender) keep its closes in a
# table of their own, ``<service>_closes``, with these helpers.


def closes_ddl(service: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {service}_closes (
        conversation_id uuid PRIMARY KEY,
        conversation_key text NOT NULL,
        closed_at timestamptz NOT NULL,
        reopened boolean NOT NULL DEFAULT false
    );
    CREATE INDEX IF NOT EXISTS {service}_closes_by_key ON {service}_closes
        (conversation_key, closed_at);
    """


def closed_sql(service: str, key: str, at: str) -> str:
    """SQL: whether the conversation of a message of thread ``key`` that arrived at ``at`` is
    closed: the first close after the message ends its conversation, unless reopened."""
    return f"""coalesce((SELECT NOT c.reopened FROM {service}_closes c
        WHERE c.conversation_key = {key} AND c.closed_at > {at}
        ORDER BY c.closed_at LIMIT 1), false)"""


async def record_closes(
    conn: Connection, service: str, events: Sequence[Envelope[ConversationChanged]]
) -> None:
    """Apply closes and reopens, in order, to ``<service>_closes``."""
    for event in events:
        if event.payload.action == "closed":
            await conn.execute(
                f"INSERT INTO {service}_closes (conversation_id, conversation_key, closed_at) "
                "VALUES ($1, $2, $3) ON CONFLICT (conversation_id) DO UPDATE "
                "SET closed_at = EXCLUDED.closed_at, reopened = false",
                event.payload.conversation_id,
                event.conversation_key,
                event.occurred_at,
            )
        else:
            await conn.execute(
                f"UPDATE {service}_closes SET reopened = true WHERE conversation_id = $1",
                event.payload.conversation_id,
            )
