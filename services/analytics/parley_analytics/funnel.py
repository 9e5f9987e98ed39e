"""Outbound messages' delivery funnel and reply/delivery times, kept up to date as their
parts (reply, send outcome, status callbacks) arrive from three topics in any order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from parley_analytics.core import Fact, Seen, bin_of, settle
from parley_shared.db import Connection, columns


async def _add_signed(
    conn: Connection,
    table: str,
    keys: Sequence[tuple[str, str]],
    sums: Sequence[tuple[str, str]],
    rows: Sequence[tuple[Any, ...]],
    period: str = "hour",
) -> None:
    """Add rows (time, channel, our address, *keys, +1 or -1, *sums) to an hourly (or daily)
    table keyed by (bucket, channel, our_address, *keys) with a ``count`` and further sums. A
    row that drops to zero goes, so the table does not depend on the path its counts took."""
    if not rows:
        return
    names = [name for name, _ in keys]
    key_types = [f"{sql}[]" for _, sql in keys]
    types = ["timestamptz[]", "text[]", "text[]", *key_types, "int[]", *(f"{t}[]" for _, t in sums)]
    params = ", ".join(f"${i}::{t}" for i, t in enumerate(types, start=1))
    alias = ", ".join(["at", "channel", "ours", *names, "delta", *(n for n, _ in sums)])
    group = ", ".join(str(i) for i in range(1, 4 + len(keys)))
    added = ", ".join(["sum(delta)", *(f"sum({n})" for n, _ in sums)])
    columns_of_key = ", ".join(["bucket", "channel", "our_address", *names])
    updates = ", ".join(
        f"{c} = {table}.{c} + EXCLUDED.{c}" for c in ["count", *(n for n, _ in sums)]
    )
    cols = columns(rows, len(types))
    await conn.execute(
        f"INSERT INTO {table} ({columns_of_key}, count{''.join(', ' + n for n, _ in sums)}) "
        f"SELECT date_trunc('{period}', at), channel, ours, {', '.join(names)}, {added} "
        f"FROM unnest({params}) AS u({alias}) GROUP BY {group} "
        f"ON CONFLICT ({columns_of_key}) DO UPDATE SET {updates}",
        *cols,
    )
    if any(row[3 + len(keys)] < 0 for row in rows):
        key_params = ", ".join(f"${i}::{t}" for i, t in enumerate(types[: 3 + len(keys)], start=1))
        matches = " ".join(f"AND t.{n} = u.{n}" for n in names)
        await conn.execute(
            f"DELETE FROM {table} t USING unnest({key_params}) "
            f"AS u(at, channel, ours, {', '.join(names)}) "
            f"WHERE t.count = 0 AND t.bucket = date_trunc('{period}', u.at) "
            f"AND t.channel = u.channel AND t.our_address = u.ours {matches}",
            *cols[: 3 + len(keys)],
        )


async def add_latencies(
    conn: Connection, samples: Iterable[tuple[datetime, str, str, str, float, int]]
) -> None:
    """(time, channel, our address, metric, milliseconds, +1 to add / -1 to take back)
    samples into the hourly and daily histograms."""
    rows = [
        (at, channel, ours, metric, bin_of(ms), delta, round(ms) * delta)
        for at, channel, ours, metric, ms, delta in samples
    ]
    for table, period in (("analytics_latency", "hour"), ("analytics_latency_daily", "day")):
        await _add_signed(
            conn, table, [("metric", "text"), ("bin", "int")], [("sum_ms", "bigint")], rows, period
        )


async def settle_facts(
    conn: Connection,
    *,
    ids: Sequence[UUID] = (),
    sids: Sequence[str] = (),
    latencies: Sequence[tuple[datetime, str, str, str, float, int]] = (),
) -> None:
    """Bring outbound facts (by id or Twilio SID) and the aggregates up to date with every
    part of them seen so far: the funnel, and reply and delivery times; ``latencies``: further
    samples (as ``add_latencies`` takes them) written with theirs."""
    if not ids and not sids:
        await add_latencies(conn, latencies)
        return
    records = await conn.fetch(
        "SELECT f.id, f.inbound_at, f.sent_at, f.message_sid, f.status, f.error_code, "
        "f.funnel_status, f.funnel_error, f.delivered_at, f.counted_reply, f.counted_delivery, "
        "f.channel, f.our_address, "
        "array_remove(array_agg(s.status ORDER BY s.at, s.status), NULL) AS seen, "
        "array_remove(array_agg(s.at ORDER BY s.at, s.status), NULL) AS seen_at, "
        "array_agg(s.error_code ORDER BY s.at, s.status) AS seen_errors "
        "FROM analytics_facts f LEFT JOIN analytics_statuses s ON s.message_sid = f.message_sid "
        "WHERE f.direction = 'outbound' AND (f.id = ANY($1::uuid[]) OR "
        "f.message_sid = ANY($2::text[])) GROUP BY f.id",
        list(ids),
        list(sids),
    )
    moves, updates = [], []
    samples = list(latencies)
    for r in records:
        before = Fact(
            id=r["id"],
            inbound_at=r["inbound_at"],
            sent_at=r["sent_at"],
            message_sid=r["message_sid"],
            status=r["status"],
            error_code=r["error_code"],
            funnel_status=r["funnel_status"],
            funnel_error=r["funnel_error"],
            delivered_at=r["delivered_at"],
            counted_reply=r["counted_reply"],
            counted_delivery=r["counted_delivery"],
        )
        seen = [
            Seen(status, at, error)
            for status, at, error in zip(r["seen"], r["seen_at"], r["seen_errors"], strict=False)
        ]
        done = settle(before, seen)
        where = (r["channel"], r["our_address"])
        moves += [
            (r["sent_at"], *where, status, error, delta) for status, error, delta in done.moves
        ]
        samples += [
            (r["inbound_at"], *where, metric, ms, delta) for metric, ms, delta in done.latencies
        ]
        if done.fact != before:
            f = done.fact
            updates.append(
                (
                    f.id,
                    f.funnel_status,
                    f.funnel_error,
                    f.delivered_at,
                    f.counted_reply,
                    f.counted_delivery,
                )
            )
    await _move_funnel(conn, moves)
    await add_latencies(conn, samples)
    if updates:
        await conn.execute(
            "UPDATE analytics_facts f SET funnel_status = u.status, funnel_error = u.error, "
            "delivered_at = u.delivered_at, counted_reply = u.reply, "
            "counted_delivery = u.delivery FROM unnest($1::uuid[], $2::text[], $3::int[], "
            "$4::timestamptz[], $5::bool[], $6::bool[]) "
            "AS u(id, status, error, delivered_at, reply, delivery) WHERE f.id = u.id",
            *columns(updates, 6),
        )


async def _move_funnel(
    conn: Connection, moves: Sequence[tuple[datetime, str, str, str, int, int]]
) -> None:
    """(sent at, channel, our address, status, error code, +1/-1) into the funnel counts."""
    await _add_signed(
        conn, "analytics_delivery", [("status", "text"), ("error_code", "int")], [], moves
    )
