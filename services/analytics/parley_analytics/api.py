"""The analytics API (bearer ``API_TOKEN``): every endpoint takes a time range, a channel and
one of our numbers as filters, and reads pre-aggregated hourly rows."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from parley_analytics.core import cost_usd, percentile, spreadsheet_safe
from parley_analytics.settings import ModelPrice
from parley_shared.auth import UNAUTHORIZED, invalid, require_token
from parley_shared.db import Pool

MAX_RANGE = timedelta(days=3660)
# Dates outside these are mistakes, and arithmetic on them overflows Python's datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


async def get_pool(request: Request) -> Pool:
    pool: Pool = request.state.pool
    return pool


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    channel: str | None
    our_number: str | None

    def where(self, time_column: str, first: int = 1) -> tuple[str, list[Any]]:
        """A WHERE clause over ``time_column`` and the dimension columns, with its args."""
        clauses = [f"{time_column} >= ${first}", f"{time_column} < ${first + 1}"]
        args: list[Any] = [self.start, self.end]
        if self.channel is not None:
            args.append(self.channel)
            clauses.append(f"channel = ${first + len(args) - 1}")
        if self.our_number is not None:
            args.append(self.our_number.removeprefix("whatsapp:"))
            clauses.append(f"replace(our_address, 'whatsapp:', '') = ${first + len(args) - 1}")
        return " AND ".join(clauses), args

    def hourly(self) -> tuple[str, list[Any]]:
        # Buckets are hours: include the hour the range starts in.
        where, args = self.where("bucket")
        return where, [self.start.replace(minute=0, second=0, microsecond=0), *args[1:]]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def filters(
    start: Annotated[
        datetime | None,
        Query(alias="from", description="inclusive, ISO 8601; default 30 days before `to`"),
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="exclusive; default now")] = None,
    channel: Literal["sms", "whatsapp"] | None = None,
    our_number: Annotated[str | None, Query(pattern=r"^(whatsapp:)?\+?[0-9]{3,20}$")] = None,
) -> Filters:
    for given in (start, end):
        if given is not None and not EARLIEST <= _aware(given) <= LATEST:
            raise invalid("from" if given is start else "to", "must lie between 1970 and 9999")
    end = _aware(end) if end else datetime.now(UTC)
    start = _aware(start) if start else end - timedelta(days=30)
    if start >= end:
        raise invalid("from", "must be before `to`")
    if end - start > MAX_RANGE:
        raise invalid("from", "the range may not be longer than ten years")
    return Filters(start, end, channel, our_number)


Range = Annotated[Filters, Depends(filters)]
PoolDep = Annotated[Pool, Depends(get_pool)]
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=UNAUTHORIZED)


def _range(f: Filters) -> dict[str, Any]:
    return {"from": f.start, "to": f.end, "channel": f.channel, "our_number": f.our_number}


@router.get("/stats")
async def stats(f: Range, pool: PoolDep) -> dict[str, Any]:
    """Conversations (opened in range, and of those still open), messages, participants,
    opt-outs."""
    hourly, args = f.hourly()
    totals = await pool.fetchrow(
        "SELECT coalesce(sum(messages_in), 0)::bigint AS messages_in, "
        "coalesce(sum(messages_out), 0)::bigint AS messages_out, "
        "coalesce(sum(opt_outs), 0)::bigint AS opt_outs "
        f"FROM analytics_hourly WHERE {hourly}",
        *args,
    )
    participants = await pool.fetchval(
        f"SELECT count(DISTINCT participant) FROM analytics_active WHERE {hourly}", *args
    )
    where, cargs = f.where("opened_at")
    conversations = await pool.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE closed_at IS NULL) AS open "
        f"FROM analytics_conversations WHERE {where}",
        *cargs,
    )
    assert totals is not None and conversations is not None
    return {
        "range": _range(f),
        "conversations": {"total": conversations["total"], "open": conversations["open"]},
        "messages": {"inbound": totals["messages_in"], "outbound": totals["messages_out"]},
        "participants": participants,
        "opt_outs": totals["opt_outs"],
    }


@router.get("/engagement")
async def engagement(
    f: Range, pool: PoolDep, granularity: Literal["hour", "day", "week"] = "day"
) -> dict[str, Any]:
    """Messages and active participants per bucket; participants active in the 24 h, 7 d and
    30 d before `to`; messages per conversation."""
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"""
        WITH volume AS (
            SELECT date_trunc('{granularity}', bucket) AS period,
                   sum(messages_in)::bigint AS inbound, sum(messages_out)::bigint AS outbound
            FROM analytics_hourly WHERE {hourly} GROUP BY 1),
        active AS (
            SELECT date_trunc('{granularity}', bucket) AS period,
                   count(DISTINCT participant) AS participants
            FROM analytics_active WHERE {hourly} GROUP BY 1)
        SELECT v.period, v.inbound, v.outbound, coalesce(a.participants, 0) AS participants
        FROM volume v LEFT JOIN active a USING (period) ORDER BY v.period
        """,
        *args,
    )
    active = {}
    for label, days in (("last_24h", 1), ("last_7d", 7), ("last_30d", 30)):
        window = Filters(f.end - timedelta(days=days), f.end, f.channel, f.our_number)
        where, wargs = window.hourly()
        active[label] = await pool.fetchval(
            f"SELECT count(DISTINCT participant) FROM analytics_active WHERE {where}", *wargs
        )
    where, cargs = f.where("opened_at")
    conversations = await pool.fetchval(
        f"SELECT count(*) FROM analytics_conversations WHERE {where}", *cargs
    )
    messages = sum(r["inbound"] + r["outbound"] for r in rows)
    return {
        "range": _range(f),
        "granularity": granularity,
        "buckets": [
            {
                "start": r["period"],
                "messages_in": r["inbound"],
                "messages_out": r["outbound"],
                "active_participants": r["participants"],
            }
            for r in rows
        ],
        "active_participants": active,
        "messages_per_conversation": round(messages / conversations, 2) if conversations else None,
    }


@router.get("/response-times")
async def response_times(f: Range, pool: PoolDep) -> dict[str, Any]:
    """Milliseconds from an inbound message to its reply being accepted by Twilio (`reply`)
    and delivered (`delivered`), and the model's own latency (`ai`)."""
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"SELECT metric, bin, sum(count) AS n, sum(sum_ms) AS total FROM analytics_latency "
        f"WHERE {hourly} GROUP BY metric, bin ORDER BY metric, bin",
        *args,
    )
    by_metric: dict[str, list[tuple[int, int]]] = defaultdict(list)
    sums: dict[str, float] = defaultdict(float)
    for r in rows:
        by_metric[r["metric"]].append((r["bin"], int(r["n"])))
        sums[r["metric"]] += float(r["total"])
    result = {}
    for metric in ("reply", "delivered", "ai"):
        bins = by_metric.get(metric, [])
        count = sum(n for _, n in bins)
        result[metric] = {
            "count": count,
            "avg_ms": round(sums[metric] / count, 1) if count else None,
            "p50_ms": percentile(bins, 0.50),
            "p95_ms": percentile(bins, 0.95),
            "p99_ms": percentile(bins, 0.99),
        }
    return {"range": _range(f), **result}


@router.get("/delivery")
async def delivery(f: Range, pool: PoolDep) -> dict[str, Any]:
    """Where replies ended up: accepted by Twilio, delivered, read, undelivered, failed."""
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"SELECT status, error_code, sum(count) AS n FROM analytics_delivery WHERE {hourly} "
        "GROUP BY status, error_code",
        *args,
    )
    counts: dict[str, int] = defaultdict(int)
    errors: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[r["status"]] += int(r["n"])
        if r["error_code"]:
            errors[r["error_code"]] += int(r["n"])
    attempted = sum(counts.values())
    refused = await pool.fetchval(
        f"SELECT count(*) FROM analytics_facts WHERE {f.where('sent_at')[0]} "
        "AND direction = 'outbound' AND message_sid IS NULL",
        *f.where("sent_at")[1],
    )
    sent = attempted - int(refused or 0)
    delivered = counts["delivered"] + counts["read"]
    failed = counts["failed"] + counts["canceled"]

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "range": _range(f),
        "funnel": {
            "attempted": attempted,
            "sent": sent,
            "delivered": delivered,
            "read": counts["read"],
            "undelivered": counts["undelivered"],
            "failed": failed,
        },
        "rates": {
            "delivered": rate(delivered, sent),
            "read": rate(counts["read"], delivered),
            "undelivered": rate(counts["undelivered"], sent),
            "failed": rate(failed, attempted),
        },
        "by_status": dict(sorted(counts.items())),
        "top_error_codes": [
            {"error_code": code, "count": n}
            for code, n in sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:10]
        ],
    }


@router.get("/ai-usage")
async def ai_usage(f: Range, pool: PoolDep, request: Request) -> dict[str, Any]:
    """Replies by source, tokens and estimated cost per model (prices from configuration)."""
    prices: dict[str, ModelPrice] = request.state.prices
    hourly, args = f.hourly()
    rows = await pool.fetch(
        f"SELECT model, source, sum(replies) AS replies, sum(prompt_tokens) AS prompt, "
        f"sum(completion_tokens) AS completion FROM analytics_ai WHERE {hourly} "
        "GROUP BY model, source ORDER BY model, source",
        *args,
    )
    models: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = models.setdefault(
            r["model"],
            {
                "model": r["model"],
                "replies": 0,
                "ai": 0,
                "fallback": 0,
                "offline": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
            },
        )
        m["replies"] += int(r["replies"])
        m[r["source"]] = m.get(r["source"], 0) + int(r["replies"])
        m["prompt_tokens"] += int(r["prompt"])
        m["completion_tokens"] += int(r["completion"])
    total_cost = 0.0
    for m in models.values():
        price = prices.get(m["model"])
        m["cost_usd"] = (
            round(
                cost_usd(
                    m["prompt_tokens"],
                    m["completion_tokens"],
                    price.input_per_1m,
                    price.output_per_1m,
                ),
                6,
            )
            if price
            else None
        )
        total_cost += m["cost_usd"] or 0.0
    return {
        "range": _range(f),
        "models": list(models.values()),
        "totals": {
            k: sum(m[k] for m in models.values())
            for k in ("replies", "ai", "fallback", "offline", "prompt_tokens", "completion_tokens")
        }
        | {"cost_usd": round(total_cost, 6)},
    }


EXPORT_COLUMNS = [
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
]


@router.get(
    "/export/messages.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_messages(f: Range, pool: PoolDep) -> StreamingResponse:
    """Every message in range, oldest first, streamed from a server-side cursor."""
    where, args = f.where("occurred_at")
    query = (
        "SELECT id, direction, occurred_at, channel, our_address, participant, "
        "conversation_key, body, message_sid, coalesce(funnel_status, status) AS status, "
        "error_code, source, model, prompt_tokens, completion_tokens, ai_latency_ms "
        f"FROM analytics_facts WHERE {where} ORDER BY occurred_at, id"
    )

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            async for record in conn.cursor(query, *args, prefetch=1000):
                writer.writerow([spreadsheet_safe(record[c]) for c in EXPORT_COLUMNS])
                if buffer.tell() > 64_000:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="messages.csv"'},
    )
