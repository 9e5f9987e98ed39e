"""``GET /v1/breakdown``: the headline figures per number of ours, or per tenant.

Read from the rollups (hourly counters, participant sketches per number, delivery outcomes)
and the conversation and handoff tables; a tenant's figures are the sums over its numbers,
its participants the union of its numbers' sketches (a participant who wrote to two of its
numbers counts once).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from parley_analytics import participants, sketch
from parley_analytics.api import PoolDep, Range, Scope
from parley_analytics.views import Filters
from parley_shared.auth import UNAUTHORIZED
from parley_shared.db import Pool
from parley_shared.tenancy import Reader, caller, numbers_sql
from parley_shared.whatsapp import OUTSIDE_WINDOW_CODE

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)
NUMBER = "replace(our_address, 'whatsapp:', '')"
COUNTS = ("inbound", "outbound", "opt_outs", "conversations", "takeovers", "outside_window")


class Row(BaseModel):
    key: str  # a number (E.164), a tenant's id, or "unassigned"
    name: str | None  # the tenant's name
    numbers: list[str]
    inbound: int
    outbound: int
    opt_outs: int
    conversations: int
    participants: int
    takeovers: int
    # WhatsApp replies Twilio refused because the 24-hour window had closed (63016).
    outside_window: int


class Breakdown(BaseModel):
    range: Scope
    by: Literal["number", "tenant"]
    rows: list[Row]


async def _per_number(pool: Pool, f: Filters) -> dict[str, dict[str, int]]:
    hourly, args = f.hourly()
    hwhere, hargs = f.where("at")
    queries = [
        (
            f"SELECT {NUMBER} AS number, sum(messages_in) AS inbound, "
            f"sum(messages_out) AS outbound, sum(opt_outs) AS opt_outs "
            f"FROM analytics_hourly WHERE {hourly} GROUP BY 1",
            args,
        ),
        (
            f"SELECT {NUMBER} AS number, sum(conversations) AS conversations "
            f"FROM analytics_hourly WHERE {hourly} GROUP BY 1",
            args,
        ),
        (
            f"SELECT {NUMBER} AS number, count(*) AS takeovers FROM analytics_handoffs "
            f"WHERE action = 'taken_over' AND {hwhere} GROUP BY 1",
            hargs,
        ),
        (
            f"SELECT {NUMBER} AS number, sum(count) AS outside_window FROM analytics_delivery "
            f"WHERE error_code = {OUTSIDE_WINDOW_CODE} AND {hourly} GROUP BY 1",
            args,
        ),
    ]
    figures: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    results = await asyncio.gather(*(pool.fetch(sql, *params) for sql, params in queries))
    for rows in results:
        for row in rows:
            for name, value in dict(row).items():
                if name != "number":
                    figures[row["number"]][name] = int(value or 0)
    return figures


async def _sketches(pool: Pool, f: Filters, numbers: list[str]) -> dict[str, bytes]:
    """Each number's participants in the range, as one merged sketch."""
    days, hours = f.pieces()
    rows = await pool.fetch(
        "SELECT level, registers FROM analytics_sketches WHERE level = ANY($1::text[]) AND ("
        "(period = 'day' AND bucket = ANY($2::timestamptz[])) OR "
        "(period = 'hour' AND bucket = ANY($3::timestamptz[])))",
        [participants.level(f.channel, n) for n in numbers],
        days,
        hours,
    )
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for row in rows:
        grouped[participants.number_of(row["level"])].append(bytes(row["registers"]))
    return {number: sketch.merge(regs) for number, regs in grouped.items()}


async def _tenants(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT t.tenant_id, t.name, {numbers_sql('analytics')} AS numbers "
        "FROM analytics_tenants t ORDER BY t.name"
    )
    return [dict(row) for row in rows]


def _row(
    key: str,
    name: str | None,
    numbers: list[str],
    figures: dict[str, dict[str, int]],
    sketches: dict[str, bytes],
) -> Row:
    counts = {c: sum(figures[n][c] for n in numbers if n in figures) for c in COUNTS}
    merged = sketch.merge(sketches[n] for n in numbers if n in sketches)
    return Row(key=key, name=name, numbers=numbers, participants=sketch.estimate(merged), **counts)


@router.get("/breakdown", response_model=Breakdown)
async def breakdown(
    f: Range, pool: PoolDep, who: Reader, by: Literal["number", "tenant"] = "number"
) -> Breakdown:
    """Messages, conversations, participants, opt-outs, takeovers and replies refused outside
    WhatsApp's window, per number of ours or per tenant (a tenant's token: its own only)."""
    figures = await _per_number(pool, f)
    sketches = await _sketches(pool, f, sorted(figures))
    if by == "number":
        rows = [_row(n, None, [n], figures, sketches) for n in sorted(figures)]
        return Breakdown(range=Scope.of(f), by=by, rows=rows)
    tenants = [
        t for t in await _tenants(pool) if who.tenant_id is None or t["tenant_id"] == who.tenant_id
    ]
    rows = [
        _row(str(t["tenant_id"]), t["name"], sorted(set(t["numbers"])), figures, sketches)
        for t in tenants
    ]
    if who.admin:
        owned = {n for t in tenants for n in t["numbers"]}
        rows.append(_row("unassigned", None, sorted(set(figures) - owned), figures, sketches))
    return Breakdown(range=Scope.of(f), by=by, rows=rows)
