"""Calls and emails, counted beside messages: one row per call (however many status
callbacks it had) or email, from which the contacts figures are summed per channel
("voice", "email").

A call's row keeps when its first callback arrived (the call's time, which any order of its
callbacks agrees on) and its furthest outcome: started, then completed (answered) or missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from parley_analytics.views import Filters
from parley_shared.db import Connection, Pool, columns
from parley_shared.events import CallUpdated, EmailReceived, Envelope
from parley_shared.migrations import Migration
from parley_shared.status import call_progress

MIGRATION = Migration(
    "calls and emails: one row each, for the contacts figures",
    """
    CREATE TABLE IF NOT EXISTS analytics_contacts (
        id text PRIMARY KEY, channel text NOT NULL, our_address text NOT NULL,
        conversation_key text NOT NULL, direction text NOT NULL,
        started_at timestamptz NOT NULL, at timestamptz NOT NULL, status text NOT NULL,
        outcome text NOT NULL, duration_s int
    );
    CREATE INDEX IF NOT EXISTS analytics_contacts_started ON analytics_contacts (started_at);
    """,
)


async def add_calls(conn: Connection, events: Sequence[Envelope[CallUpdated]]) -> None:
    merged: dict[str, tuple[Any, ...]] = {}
    for e in events:
        p = e.payload
        row = (
            p.call_sid,
            "voice",
            p.our_address,
            e.conversation_key,
            p.direction,
            e.occurred_at,
            e.occurred_at,
            p.status,
            p.outcome,
            p.duration_s,
        )
        known = merged.get(p.call_sid)
        merged[p.call_sid] = row if known is None else _merge(known, row)
    await _upsert(conn, list(merged.values()))


def _merge(known: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """Two callbacks of one call as one row, as the statement in ``_upsert`` merges them."""
    furthest = max(known, new, key=lambda r: call_progress(r[8], r[6], r[7]))
    return (*furthest[:5], min(known[5], new[5]), *furthest[6:])


async def add_emails(conn: Connection, events: Sequence[Envelope[EmailReceived]]) -> None:
    rows = {
        str(e.event_id): (
            str(e.event_id),
            "email",
            e.payload.our_address,
            e.conversation_key,
            "inbound",
            e.occurred_at,
            e.occurred_at,
            "received",
            "received",
            None,
        )
        for e in events
    }
    await _upsert(conn, list(rows.values()))


async def _upsert(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    await conn.execute(
        "INSERT INTO analytics_contacts AS c SELECT * FROM unnest($1::text[], $2::text[], "
        "$3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], "
        "$9::text[], $10::int[]) ON CONFLICT (id) DO UPDATE SET "
        "started_at = least(c.started_at, EXCLUDED.started_at), "
        "(at, status, outcome, duration_s) = (SELECT * FROM (VALUES "
        "(c.at, c.status, c.outcome, c.duration_s), "
        "(EXCLUDED.at, EXCLUDED.status, EXCLUDED.outcome, EXCLUDED.duration_s)) "
        "AS v(at, status, outcome, duration_s) "
        "ORDER BY v.outcome <> 'started' DESC, v.at DESC, v.status DESC LIMIT 1)",
        *columns(rows, 10),
    )


async def figures(pool: Pool, f: Filters) -> list[dict[str, Any]]:
    """Per channel ("voice", "email"): contacts begun in the range, in and out, answered and
    missed calls, calls under way, seconds talked."""
    # Channels here are the contacts' own: the messages' channel filter does not apply.
    where, args = replace(f, channel=None).where("started_at")
    rows = await pool.fetch(
        "SELECT channel, count(*) AS total, "
        "count(*) FILTER (WHERE direction = 'inbound') AS inbound, "
        "count(*) FILTER (WHERE direction = 'outbound') AS outbound, "
        "count(*) FILTER (WHERE outcome = 'completed') AS completed, "
        "count(*) FILTER (WHERE outcome = 'missed') AS missed, "
        "count(*) FILTER (WHERE outcome = 'started') AS in_progress, "
        "coalesce(sum(duration_s) FILTER (WHERE outcome = 'completed'), 0) AS talk_seconds "
        f"FROM analytics_contacts WHERE {where} GROUP BY channel ORDER BY channel",
        *args,
    )
    return [dict(row) for row in rows]
