"""Read models of the analytics API: every query over the projection's tables, by filter.

Routes (``api.py``) shape what these return; nothing here knows about HTTP. Reads go to the
hourly rollups wherever a figure allows it; only the funnel's refused sends and the export
read per-message facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from parley_shared.db import Pool
from parley_shared.identity import addresses_of

Granularity = Literal["hour", "day", "week"]


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    channel: str | None
    our_number: str | None
    # The caller's tenant's numbers (bare E.164); None: every number (the admin).
    numbers: frozenset[str] | None = None

    def where(self, time_column: str, first: int = 1, table: str = "") -> tuple[str, list[Any]]:
        """A WHERE clause over ``time_column`` and the dimension columns (of ``table``, an
        alias, when given), with its args."""
        dims, args = self.dims(first + 2, table)
        span = f"{time_column} >= ${first} AND {time_column} < ${first + 1}"
        return f"{span} AND {dims}", [self.start, self.end, *args]

    def dims(self, first: int = 1, table: str = "") -> tuple[str, list[Any]]:
        """A WHERE clause over the dimension columns only, its parameters from ``$first``."""
        of = f"{table}." if table else ""
        clauses = ["true"]
        args: list[Any] = []
        if self.channel is not None:
            args.append(self.channel)
            clauses.append(f"{of}channel = ${first + len(args) - 1}")
        if self.our_number is not None:
            args.append(self.our_number.removeprefix("whatsapp:"))
            clauses.append(f"replace({of}our_address, 'whatsapp:', '') = ${first + len(args) - 1}")
        if self.numbers is not None:
            args.append(addresses_of(self.numbers))
            clauses.append(f"{of}our_address = ANY(${first + len(args) - 1}::text[])")
        return " AND ".join(clauses), args

    def hourly(self) -> tuple[str, list[Any]]:
        # Buckets are hours: include the hour the range starts in.
        where, args = self.where("bucket")
        return where, [self.start.replace(minute=0, second=0, microsecond=0), *args[1:]]

    def pieces(self) -> tuple[list[datetime], list[datetime]]:
        """The whole days in the range and the hours at its edges (from the hour it starts
        in), to read daily rollups where they fit and hourly ones around them."""
        start = floor(self.start, "hour")
        first_day = floor(start, "day")
        if first_day < start:
            first_day += timedelta(days=1)
        last_day = floor(self.end, "day")
        if last_day <= first_day:
            return [], hours_between(start, self.end)
        days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days)]
        return days, hours_between(start, first_day) + hours_between(last_day, self.end)

    def last(self, days: int) -> Filters:
        """The same filters over the ``days`` before this range's end."""
        return Filters(
            self.end - timedelta(days=days), self.end, self.channel, self.our_number, self.numbers
        )


def floor(at: datetime, period: str) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if period == "day" else at


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    hours = []
    at = start
    while at < end:
        hours.append(at)
        at += timedelta(hours=1)
    return hours


@dataclass(frozen=True)
class Volume:
    messages_in: int
    messages_out: int
    opt_outs: int


async def volume(pool: Pool, f: Filters) -> Volume:
    hourly, args = f.hourly()
    row = await pool.fetchrow(
        "SELECT coalesce(sum(messages_in), 0)::bigint AS messages_in, "
        "coalesce(sum(messages_out), 0)::bigint AS messages_out, "
        "coalesce(sum(opt_outs), 0)::bigint AS opt_outs "
        f"FROM analytics_hourly WHERE {hourly}",
        *args,
    )
    assert row is not None
    return Volume(row["messages_in"], row["messages_out"], row["opt_outs"])


async def conversations(pool: Pool, f: Filters) -> tuple[int, int]:
    """Conversations opened in the range (by the hour, as volumes are), and how many of those
    are still open."""
    hourly, args = f.hourly()
    row = await pool.fetchrow(
        "SELECT coalesce(sum(conversations), 0)::bigint AS total, "
        "coalesce(sum(open_conversations), 0)::bigint AS open "
        f"FROM analytics_hourly WHERE {hourly}",
        *args,
    )
    assert row is not None
    return row["total"], row["open"]


@dataclass(frozen=True)
class Bucket:
    start: datetime
    messages_in: int
    messages_out: int
    active_participants: int


async def volumes(pool: Pool, f: Filters, granularity: Granularity) -> list[Any]:
    """Messages in and out per period."""
    hourly, args = f.hourly()
    return await pool.fetch(
        f"SELECT date_trunc('{granularity}', bucket) AS period, "
        "sum(messages_in)::bigint AS inbound, sum(messages_out)::bigint AS outbound "
        f"FROM analytics_hourly WHERE {hourly} GROUP BY 1 ORDER BY 1",
        *args,
    )


def buckets(volumes: Sequence[Any], active: Mapping[datetime, int]) -> list[Bucket]:
    """Periods' volumes with ``active`` (distinct participants per period)."""
    return [
        Bucket(r["period"], r["inbound"], r["outbound"], active.get(r["period"], 0))
        for r in volumes
    ]


@dataclass(frozen=True)
class Histogram:
    bins: list[tuple[int, int]]  # (log-scale bin, count), by bin
    total_ms: float


async def latencies(pool: Pool, f: Filters) -> dict[str, Histogram]:
    """Per metric (``reply``, ``delivered``, ``ai``), the histogram over the range: the daily
    rollup for its whole days, the hourly one for the hours at its edges."""
    days, hours = f.pieces()
    dims, args = f.dims()
    n = len(args)
    rows = await pool.fetch(
        f"SELECT metric, bin, sum(count) AS n, sum(sum_ms) AS total FROM ("
        f"SELECT metric, bin, count, sum_ms FROM analytics_latency_daily "
        f"WHERE bucket = ANY(${n + 1}::timestamptz[]) AND {dims} UNION ALL "
        f"SELECT metric, bin, count, sum_ms FROM analytics_latency "
        f"WHERE bucket = ANY(${n + 2}::timestamptz[]) AND {dims}) x "
        "GROUP BY metric, bin ORDER BY metric, bin",
        *args,
        days,
        hours,
    )
    bins: dict[str, list[tuple[int, int]]] = defaultdict(list)
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        bins[r["metric"]].append((r["bin"], int(r["n"])))
        totals[r["metric"]] += float(r["total"])
    return {metric: Histogram(bins[metric], totals[metric]) for metric in bins}


@dataclass(frozen=True)
class Outcomes:
    by_status: dict[str, int]
    by_error: dict[int, int]
    refused: int  # sends Twilio never took (no SID)


async def outcomes(pool: Pool, f: Filters) -> Outcomes:
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"SELECT status, error_code, sum(count) AS n FROM analytics_delivery WHERE {hourly} "
        "GROUP BY status, error_code",
        *args,
    )
    by_status: dict[str, int] = defaultdict(int)
    by_error: dict[int, int] = defaultdict(int)
    for r in rows:
        by_status[r["status"]] += int(r["n"])
        if r["error_code"]:
            by_error[r["error_code"]] += int(r["n"])
    where, fargs = f.where("sent_at")
    refused = await pool.fetchval(
        f"SELECT count(*) FROM analytics_facts WHERE {where} "
        "AND direction = 'outbound' AND message_sid IS NULL",
        *fargs,
    )
    return Outcomes(dict(by_status), dict(by_error), int(refused or 0))


@dataclass(frozen=True)
class ModelUse:
    model: str
    source: str
    replies: int
    prompt_tokens: int
    completion_tokens: int


async def model_use(pool: Pool, f: Filters) -> list[ModelUse]:
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"SELECT model, source, sum(replies) AS replies, sum(prompt_tokens) AS prompt, "
        f"sum(completion_tokens) AS completion FROM analytics_ai WHERE {hourly} "
        "GROUP BY model, source ORDER BY model, source",
        *args,
    )
    return [
        ModelUse(r["model"], r["source"], int(r["replies"]), int(r["prompt"]), int(r["completion"]))
        for r in rows
    ]


EXPORT_COLUMNS: Sequence[str] = (
    "id",
    "direction",
    "occurred_at",
    "channel",
    "our_address",
    "participant",
    "conversation_key",
    "body",
    "message_sid",
    "status",
    "error_code",
    "source",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "ai_latency_ms",
)


async def messages(pool: Pool, f: Filters) -> AsyncIterator[list[Any]]:
    """Every message in range, oldest first, as ``EXPORT_COLUMNS`` rows, from a server-side
    cursor in one read-only transaction."""
    where, args = f.where("occurred_at")
    query = (
        "SELECT id, direction, occurred_at, channel, our_address, participant, "
        "conversation_key, body, message_sid, coalesce(funnel_status, status) AS status, "
        "error_code, source, model, prompt_tokens, completion_tokens, ai_latency_ms "
        f"FROM analytics_facts WHERE {where} ORDER BY occurred_at, id"
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for record in conn.cursor(query, *args, prefetch=1000):
            yield [record[column] for column in EXPORT_COLUMNS]
