"""Forgetting an erased participant in a projection, the same whichever order events come in.

Deleting a participant's key (``keyring``) makes the log read "[erased]" in their fields; a
projection must also forget what it already opened. Each projection keeps the subject of the
events it stored (a column beside the personal ones) and, on ``participant.erased``, rewrites
those rows as a rebuild would now build them (``scrub``). The subjects it has seen erased are
kept too (``<service>_erased``), so an event of an erased subject read after the erasure (a
late callback; another topic on a replay) is stored forgotten straight away: the tables end
the same whether the erasure came first or last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from parley_shared.db import Connection
from parley_shared.events import Envelope, ParticipantErased, decode, encode
from parley_shared.migrations import Migration
from parley_shared.sealing import ERASED, forgotten

__all__ = [
    "ERASED",
    "Forgotten",
    "Scrub",
    "follow",
    "forget_events_where",
    "forget_stored_events",
    "forgotten_for",
    "migration",
    "subjects_of",
]

Scrub = Callable[[Connection, list[UUID]], Awaitable[None]]


def migration(service: str, columns: str = "") -> Migration:
    """The table of erased subjects, and ``columns``: the DDL that adds this service's
    ``subject`` columns."""
    return Migration(
        "participants' erasure: subjects erased, and the subject of every row kept",
        f"CREATE TABLE IF NOT EXISTS {service}_erased (subject uuid PRIMARY KEY);\n{columns}",
    )


@dataclass(frozen=True)
class Forgotten:
    """What a projection has forgotten that a batch touches: erased subjects, and the
    retention horizons of its conversations (``retention``)."""

    erased: frozenset[UUID] = frozenset()
    horizons: Mapping[str, datetime] = field(default_factory=dict)

    def applied_to(self, events: Sequence[Envelope]) -> Sequence[Envelope]:
        """``events``, those of erased subjects forgotten (read before the key's deletion
        was seen everywhere, or replayed from a copy of the log that still opens)."""
        if not self.erased:
            return events
        return [forgotten(e) if e.subject in self.erased else e for e in events]


async def forgotten_for(conn: Connection, service: str, events: Sequence[Envelope]) -> Forgotten:
    """One statement: which of ``events``' subjects are erased, which of their
    conversations have a retention horizon."""
    rows = await conn.fetch(
        f"SELECT subject, NULL AS conversation_key, NULL::timestamptz AS before "
        f"FROM {service}_erased WHERE subject = ANY($1::uuid[]) UNION ALL "
        f"SELECT NULL, conversation_key, before FROM {service}_horizons "
        "WHERE conversation_key = ANY($2::text[])",
        list({e.subject for e in events if e.subject is not None}),
        list({e.conversation_key for e in events}),
    )
    return Forgotten(
        frozenset(row["subject"] for row in rows if row["subject"] is not None),
        {row["conversation_key"]: row["before"] for row in rows if row["subject"] is None},
    )


async def forget_stored_events(
    conn: Connection, table: str, key: str, subjects: list[UUID]
) -> None:
    """Rewrite the events ``table`` keeps (column ``event``, rows by ``key``) of these
    subjects as they now read: forgotten."""
    await forget_events_where(conn, table, key, "subject = ANY($1::uuid[])", subjects)


async def forget_events_where(
    conn: Connection, table: str, key: str, where: str, *args: object
) -> None:
    """``forget_stored_events`` for the rows ``where`` selects."""
    rows = await conn.fetch(
        f"SELECT {key} AS id, event FROM {table} WHERE ({where}) AND event IS NOT NULL", *args
    )
    changed = [
        (row["id"], again)
        for row in rows
        if (again := encode(forgotten(decode(bytes(row["event"]))))) != bytes(row["event"])
    ]
    if changed:
        await conn.execute(
            f"UPDATE {table} SET event = u.event FROM unnest($1::uuid[], $2::bytea[]) "
            f"AS u(id, event) WHERE {table}.{key} = u.id",
            [id_ for id_, _ in changed],
            [event for _, event in changed],
        )


def subjects_of(events: Sequence[Envelope]) -> set[UUID]:
    """The participants (subjects) ``events`` are about, erasures included."""
    return {e.subject for e in events if e.subject is not None} | erased_subjects(events)


def erased_subjects(events: Sequence[Envelope]) -> set[UUID]:
    """The participants ``events`` erase."""
    return {e.payload.subject for e in events if isinstance(e.payload, ParticipantErased)}


def follow(
    service: str, scrub: Scrub
) -> Callable[[Connection, Sequence[Envelope[ParticipantErased]]], Awaitable[None]]:
    """The handler of ``participant.erased`` for a projection whose rows ``scrub`` forgets."""

    async def erased(conn: Connection, events: Sequence[Envelope[ParticipantErased]]) -> None:
        subjects = sorted({e.payload.subject for e in events})
        await conn.execute(
            f"INSERT INTO {service}_erased (subject) SELECT unnest($1::uuid[]) "
            "ON CONFLICT DO NOTHING",
            subjects,
        )
        await scrub(conn, subjects)

    return erased
