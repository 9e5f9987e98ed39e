"""The analytics API (bearer token; a tenant's sees its own numbers only): every endpoint takes
a time range, a channel and one of our numbers as filters; the figures come from the read
models in ``views``."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from parley_analytics import participants, views
from parley_analytics.core import percentile, spreadsheet_safe
from parley_analytics.views import EXPORT_COLUMNS, Filters, Granularity
from parley_shared.auth import UNAUTHORIZED, invalid
from parley_shared.db import Pool
from parley_shared.prices import ModelPrice
from parley_shared.tenancy import Reader, caller

MAX_RANGE = timedelta(days=3660)
# Dates outside these are mistakes, and arithmetic on them overflows Python's datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


async def get_pool(request: Request) -> Pool:
    pool: Pool = request.state.pool
    return pool


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def filters(
    who: Reader,
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
    return Filters(start, end, channel, our_number, who.numbers)


Range = Annotated[Filters, Depends(filters)]
PoolDep = Annotated[Pool, Depends(get_pool)]
router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)


class Scope(BaseModel):
    """The filters a figure was computed with."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    channel: str | None
    our_number: str | None

    @classmethod
    def of(cls, f: Filters) -> Scope:
        return cls(start=f.start, end=f.end, channel=f.channel, our_number=f.our_number)


class Counted(BaseModel):
    total: int
    open: int


class Directions(BaseModel):
    inbound: int
    outbound: int


class Stats(BaseModel):
    range: Scope
    conversations: Counted
    messages: Directions
    participants: int
    opt_outs: int


class ActiveParticipants(BaseModel):
    last_24h: int
    last_7d: int
    last_30d: int


class Engagement(BaseModel):
    range: Scope
    granularity: Granularity
    buckets: list[views.Bucket]
    active_participants: ActiveParticipants
    messages_per_conversation: float | None


class Latency(BaseModel):
    count: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ResponseTimes(BaseModel):
    range: Scope
    reply: Latency
    delivered: Latency
    ai: Latency


class Funnel(BaseModel):
    attempted: int
    sent: int
    delivered: int
    read: int
    undelivered: int
    failed: int


class Rates(BaseModel):
    delivered: float | None
    read: float | None
    undelivered: float | None
    failed: float | None


class ErrorCount(BaseModel):
    error_code: int
    count: int


class Delivery(BaseModel):
    range: Scope
    funnel: Funnel
    rates: Rates
    by_status: dict[str, int]
    top_error_codes: list[ErrorCount]


class Usage(BaseModel):
    replies: int = 0
    ai: int = 0
    fallback: int = 0
    offline: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


class ModelUsage(Usage):
    model: str


class AiUsage(BaseModel):
    range: Scope
    models: list[ModelUsage]
    totals: Usage


@router.get("/stats", response_model=Stats)
async def stats(f: Range, pool: PoolDep) -> Stats:
    """Conversations (opened in range, and of those still open), messages, participants,
    opt-outs."""
    # Independent reads, each on its own pooled connection: the answer takes the slowest.
    volume, (total, still_open), distinct = await asyncio.gather(
        views.volume(pool, f), views.conversations(pool, f), participants.distinct(pool, f)
    )
    return Stats(
        range=Scope.of(f),
        conversations=Counted(total=total, open=still_open),
        messages=Directions(inbound=volume.messages_in, outbound=volume.messages_out),
        participants=distinct,
        opt_outs=volume.opt_outs,
    )


@router.get("/engagement", response_model=Engagement)
async def engagement(f: Range, pool: PoolDep, granularity: Granularity = "day") -> Engagement:
    """Messages and active participants per bucket; participants active in the 24 h, 7 d and
    30 d before `to`; messages per conversation."""
    active, volumes, (conversations, _), day, week, month = await asyncio.gather(
        participants.series(pool, f, granularity),
        views.volumes(pool, f, granularity),
        views.conversations(pool, f),
        participants.distinct(pool, f.last(1)),
        participants.distinct(pool, f.last(7)),
        participants.distinct(pool, f.last(30)),
    )
    buckets = views.buckets(volumes, active)
    messages = sum(b.messages_in + b.messages_out for b in buckets)
    return Engagement(
        range=Scope.of(f),
        granularity=granularity,
        buckets=buckets,
        active_participants=ActiveParticipants(last_24h=day, last_7d=week, last_30d=month),
        messages_per_conversation=round(messages / conversations, 2) if conversations else None,
    )


@router.get("/response-times", response_model=ResponseTimes)
async def response_times(f: Range, pool: PoolDep) -> ResponseTimes:
    """Milliseconds from an inbound message to its reply being accepted by Twilio (`reply`)
    and delivered (`delivered`), and the model's own latency (`ai`)."""
    histograms = await views.latencies(pool, f)
    figures = {}
    for metric in ("reply", "delivered", "ai"):
        histogram = histograms.get(metric, views.Histogram([], 0.0))
        count = sum(n for _, n in histogram.bins)
        figures[metric] = Latency(
            count=count,
            avg_ms=round(histogram.total_ms / count, 1) if count else None,
            p50_ms=percentile(histogram.bins, 0.50),
            p95_ms=percentile(histogram.bins, 0.95),
            p99_ms=percentile(histogram.bins, 0.99),
        )
    return ResponseTimes(range=Scope.of(f), **figures)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@router.get("/delivery", response_model=Delivery)
async def delivery(f: Range, pool: PoolDep) -> Delivery:
    """Where replies ended up: accepted by Twilio, delivered, read, undelivered, failed."""
    seen = await views.outcomes(pool, f)
    counts = seen.by_status
    attempted = sum(counts.values())
    sent = attempted - seen.refused
    delivered = counts.get("delivered", 0) + counts.get("read", 0)
    failed = counts.get("failed", 0) + counts.get("canceled", 0)
    read, undelivered = counts.get("read", 0), counts.get("undelivered", 0)
    top = sorted(seen.by_error.items(), key=lambda item: (-item[1], item[0]))[:10]
    return Delivery(
        range=Scope.of(f),
        funnel=Funnel(
            attempted=attempted,
            sent=sent,
            delivered=delivered,
            read=read,
            undelivered=undelivered,
            failed=failed,
        ),
        rates=Rates(
            delivered=_rate(delivered, sent),
            read=_rate(read, delivered),
            undelivered=_rate(undelivered, sent),
            failed=_rate(failed, attempted),
        ),
        by_status=dict(sorted(counts.items())),
        top_error_codes=[ErrorCount(error_code=code, count=n) for code, n in top],
    )


@router.get("/ai-usage", response_model=AiUsage)
async def ai_usage(f: Range, pool: PoolDep, request: Request) -> AiUsage:
    """Replies by source, tokens and estimated cost per model (prices from configuration)."""
    prices: dict[str, ModelPrice] = request.state.prices
    models: dict[str, ModelUsage] = {}
    for use in await views.model_use(pool, f):
        m = models.setdefault(use.model, ModelUsage(model=use.model))
        m.replies += use.replies
        setattr(m, use.source, getattr(m, use.source) + use.replies)
        m.prompt_tokens += use.prompt_tokens
        m.completion_tokens += use.completion_tokens
    for m in models.values():
        price = prices.get(m.model)
        if price is not None:
            m.cost_usd = round(price.cost_usd(m.prompt_tokens, m.completion_tokens), 6)
    totals = Usage(
        **{
            k: sum(getattr(m, k) for m in models.values())
            for k in ("replies", "ai", "fallback", "offline", "prompt_tokens", "completion_tokens")
        },
        cost_usd=round(sum(m.cost_usd or 0.0 for m in models.values()), 6),
    )
    return AiUsage(range=Scope.of(f), models=list(models.values()), totals=totals)


@router.get(
    "/export/messages.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_messages(f: Range, pool: PoolDep) -> StreamingResponse:
    """Every message in range, oldest first, streamed from a server-side cursor."""

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        async for row in views.messages(pool, f):
            writer.writerow([spreadsheet_safe(value) for value in row])
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
