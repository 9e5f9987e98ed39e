"""Distinct participants per hour and per day, as HyperLogLog sketches (``sketch``), at four
levels (everyone, a channel, one of our numbers, both), so that any filter reads a few rows
whatever the volume. Each sketch row also keeps its own estimate, so a series of hourly or
daily figures reads no registers; a range merges its whole days and the hours at its edges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from parley_analytics import sketch
from parley_analytics.views import Filters, floor
from parley_shared.db import Connection, Pool
from parley_shared.identity import bare_number
from parley_shared.migrations import Migration

MIGRATION = Migration(
    "distinct participants as sketches per hour and day (rebuild analytics to backfill)",
    """
    CREATE TABLE IF NOT EXISTS analytics_sketches (
        period text NOT NULL CHECK (period IN ('hour', 'day')),
        bucket timestamptz NOT NULL,
        level text NOT NULL,
        registers bytea NOT NULL,
        estimate int NOT NULL,
        PRIMARY KEY (level, period, bucket)
    );
    DROP TABLE IF EXISTS analytics_active;
    """,
)


def level(channel: str | None, number: str) -> str:
    """The sketch of one of our numbers (bare E.164), on one channel or both."""
    return f"{channel}|n:{number}" if channel else f"n:{number}"


def number_of(level_name: str) -> str:
    return level_name.rsplit("n:", 1)[1]


def levels(channel: str, our_address: str) -> tuple[str, ...]:
    number = bare_number(our_address)
    return ("*", channel, level(None, number), level(channel, number))


def levels_of(f: Filters) -> list[str]:
    """The sketches whose union counts the participants ``f`` selects."""
    if f.our_number is None and f.numbers is None:
        return [f.channel or "*"]
    numbers = {bare_number(f.our_number)} if f.our_number is not None else set(f.numbers or ())
    if f.numbers is not None:
        numbers &= f.numbers
    return sorted(level(f.channel, n) for n in numbers)


async def add(conn: Connection, seen: Sequence[tuple[datetime, str, str, str]]) -> None:
    """(time, channel, our address, participant) of messages: into every sketch they touch."""
    groups: dict[tuple[str, datetime, str], set[tuple[int, int]]] = defaultdict(set)
    # A batch has few participants, hours and numbers, and many messages of each.
    points: dict[str, tuple[int, int]] = {}
    floors: dict[datetime, tuple[tuple[str, datetime], ...]] = {}
    touched: dict[tuple[str, str], tuple[str, ...]] = {}
    for at, channel, ours, participant in seen:
        point = points.get(participant)
        if point is None:
            point = points[participant] = sketch.point(participant)
        hour = floor(at, "hour")
        buckets = floors.get(hour)
        if buckets is None:
            buckets = floors[hour] = (("hour", hour), ("day", floor(hour, "day")))
        where = touched.get((channel, ours))
        if where is None:
            where = touched[channel, ours] = levels(channel, ours)
        for period, bucket in buckets:
            for level in where:
                groups[(period, bucket, level)].add(point)
    if not groups:
        return
    keys = sorted(groups)
    # Locked in one order, read, merged here, written back: registers only grow.
    rows = await conn.fetch(
        "SELECT s.period, s.bucket, s.level, s.registers FROM analytics_sketches s "
        "JOIN unnest($1::text[], $2::timestamptz[], $3::text[]) AS k(period, bucket, level) "
        "USING (period, bucket, level) ORDER BY s.level, s.period, s.bucket FOR UPDATE OF s",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    known = {(r["period"], r["bucket"], r["level"]): bytes(r["registers"]) for r in rows}
    updated = [(key, sketch.add_points(known.get(key, sketch.EMPTY), groups[key])) for key in keys]
    changed = [(key, regs) for key, regs in updated if regs != known.get(key)]
    if changed:
        await conn.execute(
            "INSERT INTO analytics_sketches SELECT * FROM unnest($1::text[], "
            "$2::timestamptz[], $3::text[], $4::bytea[], $5::int[]) ON CONFLICT "
            "(level, period, bucket) DO UPDATE SET registers = EXCLUDED.registers, "
            "estimate = EXCLUDED.estimate",
            [k[0] for k, _ in changed],
            [k[1] for k, _ in changed],
            [k[2] for k, _ in changed],
            [regs for _, regs in changed],
            [sketch.estimate(regs) for _, regs in changed],
        )


async def distinct(pool: Pool, f: Filters) -> int:
    """Participants who wrote in the range (estimated; all but exact below a few thousand)."""
    days, hours = f.pieces()
    rows = await pool.fetch(
        "SELECT registers FROM analytics_sketches WHERE level = ANY($1::text[]) AND ("
        "(period = 'day' AND bucket = ANY($2::timestamptz[])) OR "
        "(period = 'hour' AND bucket = ANY($3::timestamptz[])))",
        levels_of(f),
        days,
        hours,
    )
    return sketch.estimate(sketch.merge(bytes(r["registers"]) for r in rows))


async def series(pool: Pool, f: Filters, granularity: str) -> dict[datetime, int]:
    """Distinct participants per hour, day or week of the range."""
    period = "hour" if granularity == "hour" else "day"
    levels = levels_of(f)
    # One sketch per bucket: its stored estimate is the answer, no registers needed.
    single = granularity != "week" and len(levels) == 1
    rows = await pool.fetch(
        f"SELECT bucket, estimate{'' if single else ', registers'} FROM analytics_sketches "
        "WHERE level = ANY($1::text[]) AND period = $2 AND bucket >= $3 AND bucket < $4 "
        "ORDER BY bucket",
        levels,
        period,
        floor(f.start, period),
        f.end,
    )
    if single:
        return {r["bucket"]: r["estimate"] for r in rows}
    # Several numbers' sketches, or a week of days: the union of their registers.
    groups: dict[datetime, list[bytes]] = defaultdict(list)
    for r in rows:
        at = r["bucket"]
        groups[at - timedelta(days=at.weekday()) if granularity == "week" else at].append(
            bytes(r["registers"])
        )
    return {at: sketch.estimate(sketch.merge(regs)) for at, regs in groups.items()}
