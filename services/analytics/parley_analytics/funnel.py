"""Outbound messages' delivery funnel and reply/delivery times, kept up to date as their
parts (reply, send outcome, status callbacks) arrive from three topics in any order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from parley_analytics.core import Fact, Seen, bin_of, settle
from parley_shared.db import Connection, columns


async def add_latencies(
    conn: Connection, samples: Iterable[tuple[datetime, str, str, str, float, int]]
) -> None:
    """(time, channel, our address, metric, milliseconds, +1 to add / -1 to take back)
    samples into the hourly histograms."""
    rows = [
        (at, channel, ours, metric, bin_of(ms), round(ms) * delta, delta)
        for at, channel, ours, metric, ms, delta in samples
    ]
    if not rows:
        return
    cols = columns(rows, 7)
    await conn.execute(
        "INSERT INTO analytics_latency SELECT date_trunc('hour', at), channel, ours, metric, "
        "bin, sum(delta), sum(ms) FROM unnest($1::timestamptz[], $2::text[], $3::text[], "
        "$4::text[], $5::int[], $6::bigint[], $7::int[]) "
        "AS u(at, channel, ours, metric, bin, ms, delta) GROUP BY 1, 2, 3, 4, 5 "
        "ON CONFLICT (bucket, channel, our_address, metric, bin) DO UPDATE SET "
        "count = analytics_latency.count + EXCLUDED.count, "
        "sum_ms = analytics_latency.sum_ms + EXCLUDED.sum_ms",
        *cols,
    )
    if any(delta < 0 for *_, delta in rows):
        # A bin emptied by a recount goes, so the table does not depend on the path taken.
        await conn.execute(
            "DELETE FROM analytics_latency l USING unnest($1::timestamptz[], $2::text[], "
            "$3::text[], $4::text[], $5::int[]) AS u(at, channel, ours, metric, bin) "
            "WHERE l.count = 0 AND l.bucket = date_trunc('hour', u.at) "
            "AND l.channel = u.channel AND l.our_address = u.ours AND l.metric = u.metric "
            "AND l.bin = u.bin",
            *cols[:5],
        )


async def settle_facts(
    conn: Connection, *, ids: Sequence[UUID] = (), sids: Sequence[str] = ()
) -> None:
    """Bring outbound facts (by id or Twilio SID) and the aggregates up to date with every
    part of them seen so far: the funnel, and reply and delivery times."""
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
    moves, latencies, updates = [], [], []
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
        latencies += [
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
    await add_latencies(conn, latencies)
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
    if not moves:
        return
    cols = columns(moves, 6)
    await conn.execute(
        "INSERT INTO analytics_delivery SELECT date_trunc('hour', at), channel, ours, status, "
        "error, sum(delta) FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], "
        "$5::int[], $6::int[]) AS u(at, channel, ours, status, error, delta) "
        "GROUP BY 1, 2, 3, 4, 5 "
        "ON CONFLICT (bucket, channel, our_address, status, error_code) DO UPDATE SET "
        "count = analytics_delivery.count + EXCLUDED.count",
        *cols,
    )
    if any(delta < 0 for *_, delta in moves):
        # A row that drops to zero goes, so the table does not depend on the path taken.
        await conn.execute(
            "DELETE FROM analytics_delivery d USING unnest($1::timestamptz[], $2::text[], "
            "$3::text[], $4::text[], $5::int[]) AS u(at, channel, ours, status, error) "
            "WHERE d.count = 0 AND d.bucket = date_trunc('hour', u.at) AND d.channel = u.channel "
            "AND d.our_address = u.ours AND d.status = u.status AND d.error_code = u.error",
            *cols[:5],
        )
