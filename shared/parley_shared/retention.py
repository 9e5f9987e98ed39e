"""Retention per tenant: what participants wrote or were sent longer ago than their tenant
keeps (``retention_days``) is forgotten by every projection, through events, so that a
rebuild forgets exactly the same.

The conversation service sweeps and logs ``retention.applied``: a tenant, a time (``before``)
and the conversations it reached. Each projection keeps the latest horizon per conversation
(``<service>_horizons``) and forgets (its ``expire``) what its rows of those conversations
hold from before it, as an erasure does ("[erased]"), keeping what it counts. An event of such
a conversation read afterwards (a late callback; another topic on a replay) is applied and
forgotten in the same transaction, so the tables end the same whichever came first. Rows are
placed in time by an anchor that does not depend on read order: a message's arrival, a
reply's inbound's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from parley_shared.db import Connection
from parley_shared.events import Envelope, RetentionApplied
from parley_shared.migrations import Migration

Horizons = list[tuple[str, datetime]]
"""(conversation key, before): sorted by key, so statements lock rows in one order."""
Expire = Callable[[Connection, Horizons], Awaitable[None]]


def reached_rows(table: str, at: str) -> str:
    """SQL: whether a row of ``table`` is from before its conversation's horizon, given the
    horizons as ``$1`` (keys) and ``$2`` (befores) and the row's anchor time ``at``."""
    return (
        "EXISTS (SELECT 1 FROM unnest($1::text[], $2::timestamptz[]) AS h(key, before) "
        f"WHERE {table}.conversation_key = h.key AND {table}.{at} < h.before)"
    )


def columns(horizons: Horizons) -> tuple[list[str], list[datetime]]:
    """Horizons as the two arrays ``reached_rows`` and ``unnest`` take."""
    return [key for key, _ in horizons], [before for _, before in horizons]


def migration(service: str) -> Migration:
    return Migration(
        "retention per tenant: each conversation's horizon, each tenant's days",
        f"""
        CREATE TABLE IF NOT EXISTS {service}_horizons (
            conversation_key text PRIMARY KEY,
            before timestamptz NOT NULL
        );
        ALTER TABLE {service}_tenants ADD COLUMN IF NOT EXISTS retention_days int;
        """,
    )


def reached(events: Sequence[Envelope]) -> dict[str, datetime]:
    """The horizons that ``events``' retention events set, latest per conversation."""
    horizons: dict[str, datetime] = {}
    for e in events:
        if isinstance(e.payload, RetentionApplied):
            for key in e.payload.conversation_keys:
                horizons[key] = max(e.payload.before, horizons.get(key, e.payload.before))
    return horizons


def late(known: Mapping[str, datetime], events: Sequence[Envelope]) -> Horizons:
    """The horizons (``known`` before ``events``, or set by them) of the conversations that
    ``events`` other than retention's wrote to."""
    horizons = dict(known)
    for key, before in reached(events).items():
        horizons[key] = max(before, horizons.get(key, before))
    keys = {
        e.conversation_key
        for e in events
        if e.conversation_key in horizons and not isinstance(e.payload, RetentionApplied)
    }
    return sorted((key, horizons[key]) for key in keys)


def follow(
    service: str, expire: Expire
) -> Callable[[Connection, Sequence[Envelope[RetentionApplied]]], Awaitable[None]]:
    """The handler of ``retention.applied`` for a projection whose rows ``expire`` forgets."""

    async def applied(conn: Connection, events: Sequence[Envelope[RetentionApplied]]) -> None:
        keys, befores = columns(sorted(reached(events).items()))
        # Horizons only move forward: an older sweep read late changes nothing.
        await conn.execute(
            f"INSERT INTO {service}_horizons (conversation_key, before) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[]) ON CONFLICT (conversation_key) "
            f"DO UPDATE SET before = greatest({service}_horizons.before, EXCLUDED.before)",
            keys,
            befores,
        )
        rows = await conn.fetch(
            f"SELECT conversation_key, before FROM {service}_horizons "
            "WHERE conversation_key = ANY($1::text[]) ORDER BY conversation_key",
            keys,
        )
        await expire(conn, [(row["conversation_key"], row["before"]) for row in rows])

    return applied
