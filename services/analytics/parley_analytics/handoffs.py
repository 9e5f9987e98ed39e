"""Handoff figures: how many conversations a person took over, how many participants asked
for one, and how long they waited for a person's first message.

Takeovers name their conversation; requests are inbound messages (the participant texted
HUMAN, AGENT…), kept by thread and time. A person's message is a send outcome with no
inbound it answers. Waits are measured at read time from these rows, so they come out the
same whatever order the topics were read in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley_analytics.views import Filters
from parley_shared.db import Connection, Pool, columns
from parley_shared.events import Envelope, HandoffChanged, MessageReceived, MessageSent


async def add_handoffs(conn: Connection, events: Sequence[Envelope[HandoffChanged]]) -> None:
    await conn.execute(
        "INSERT INTO analytics_handoffs SELECT * FROM unnest($1::uuid[], $2::timestamptz[], "
        "$3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT DO NOTHING",
        *columns(
            [
                (
                    e.payload.conversation_id,
                    e.occurred_at,
                    e.payload.action,
                    e.conversation_key,
                    e.payload.channel,
                    e.payload.our_address,
                )
                for e in events
            ],
            6,
        ),
    )


async def add_requests(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
    if events:
        await conn.execute(
            "INSERT INTO analytics_requests SELECT * FROM unnest($1::uuid[], $2::text[], "
            "$3::timestamptz[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING",
            *columns(
                [
                    (
                        e.event_id,
                        e.conversation_key,
                        e.occurred_at,
                        e.payload.channel,
                        e.payload.our_address,
                    )
                    for e in events
                ],
                5,
            ),
        )


async def mark_people(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
    """Send outcomes of people's messages (they answer no inbound message)."""
    ids = [e.payload.reply_event_id for e in events if e.payload.requested_at is not None]
    if ids:
        await conn.execute(
            "UPDATE analytics_facts SET by_person = true WHERE id = ANY($1::uuid[])", ids
        )


async def figures(pool: Pool, f: Filters) -> dict[str, Any]:
    """Takeovers and requests in the range, and each takeover's wait: from the participant's
    request before it (since the previous hand-back), else the takeover, to a person's first
    message after it."""
    where, args = f.where("h.at", table="h")
    row = await pool.fetchrow(
        f"""
        WITH taken AS (
            SELECT h.conversation_id, h.conversation_key, h.at,
                   coalesce((SELECT min(r.at) FROM analytics_requests r
                             WHERE r.conversation_key = h.conversation_key AND r.at <= h.at
                               AND r.at > coalesce((
                                   SELECT max(b.at) FROM analytics_handoffs b
                                   WHERE b.conversation_id = h.conversation_id
                                     AND b.action = 'handed_back' AND b.at < h.at),
                                 '-infinity')), h.at) AS asked_at
            FROM analytics_handoffs h WHERE h.action = 'taken_over' AND {where}
        ),
        waits AS (
            SELECT extract(epoch FROM (
                SELECT min(p.sent_at) FROM analytics_facts p
                WHERE p.by_person AND p.conversation_key = t.conversation_key
                  AND p.sent_at >= t.at)
                - t.asked_at) * 1000 AS ms
            FROM taken t
        )
        SELECT (SELECT count(DISTINCT conversation_id) FROM taken) AS conversations,
               (SELECT count(*) FROM taken) AS takeovers,
               (SELECT count(*) FROM waits WHERE ms IS NOT NULL) AS answered,
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM waits) AS p50,
               (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) FROM waits) AS p95
        """,
        *args,
    )
    rwhere, rargs = f.where("at")
    requests = await pool.fetchval(
        f"SELECT count(*) FROM analytics_requests WHERE {rwhere}", *rargs
    )
    assert row is not None
    return {
        "handed_off_conversations": row["conversations"],
        "takeovers": row["takeovers"],
        "requests": requests,
        "first_human_reply": {
            "count": row["answered"],
            "p50_ms": None if row["p50"] is None else round(row["p50"], 1),
            "p95_ms": None if row["p95"] is None else round(row["p95"], 1),
        },
    }
