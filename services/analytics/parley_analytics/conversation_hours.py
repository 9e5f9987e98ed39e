"""Conversations opened per hour, and how many of those are still open, in the hourly rollup.

Counting them from the conversations themselves for every stats call grows with history (at a
million messages the count alone was most of ``/v1/stats``). Counting them incrementally is
not safe: a conversation's opening time moves when an earlier message is read late, a close
or a reopen rewrites its thread, and a replay reads topics in another order. So each
transaction recounts, from ``analytics_conversations``, just the hours its threads had
conversations in before and after it: the same counts whatever the order, a few index range
scans per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from parley_shared.db import Connection
from parley_shared.migrations import Migration

COUNT = """
    SELECT date_trunc('hour', c.opened_at) AS bucket, c.channel, c.our_address,
           count(*) AS conversations, count(*) FILTER (WHERE c.closed_at IS NULL) AS open
    FROM analytics_conversations c
"""

MIGRATION = Migration(
    "conversations per hour in the hourly rollup",
    f"""
    ALTER TABLE analytics_hourly
        ADD COLUMN IF NOT EXISTS conversations bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS open_conversations bigint NOT NULL DEFAULT 0;
    INSERT INTO analytics_hourly (bucket, channel, our_address, conversations,
                                  open_conversations)
    {COUNT} GROUP BY 1, 2, 3
    ON CONFLICT (bucket, channel, our_address) DO UPDATE
        SET conversations = EXCLUDED.conversations,
            open_conversations = EXCLUDED.open_conversations;
    """,
)


async def hours_of(conn: Connection, keys: Iterable[str]) -> set[datetime]:
    """The hours the conversations of these threads opened in."""
    rows = await conn.fetch(
        "SELECT DISTINCT date_trunc('hour', opened_at) AS bucket FROM analytics_conversations "
        "WHERE conversation_key = ANY($1::text[])",
        list(keys),
    )
    return {row["bucket"] for row in rows}


async def recount(conn: Connection, hours: Iterable[datetime]) -> None:
    """Set the conversation counts of these hours from the conversations (zero where none
    opened any more)."""
    buckets = sorted(set(hours))
    if not buckets:
        return
    await conn.execute(
        f"""
        WITH hours AS (SELECT unnest($1::timestamptz[]) AS bucket),
        counted AS (
            {COUNT} JOIN hours h
                ON c.opened_at >= h.bucket AND c.opened_at < h.bucket + interval '1 hour'
            GROUP BY 1, 2, 3
        ),
        emptied AS (
            UPDATE analytics_hourly o SET conversations = 0, open_conversations = 0
            FROM hours h
            WHERE o.bucket = h.bucket
              AND (o.conversations <> 0 OR o.open_conversations <> 0)
              AND NOT EXISTS (SELECT 1 FROM counted n WHERE n.bucket = o.bucket
                              AND n.channel = o.channel AND n.our_address = o.our_address)
        )
        INSERT INTO analytics_hourly (bucket, channel, our_address, conversations,
                                      open_conversations)
        SELECT bucket, channel, our_address, conversations, open FROM counted
        ON CONFLICT (bucket, channel, our_address) DO UPDATE
            SET conversations = EXCLUDED.conversations,
                open_conversations = EXCLUDED.open_conversations
            WHERE (analytics_hourly.conversations, analytics_hourly.open_conversations)
                IS DISTINCT FROM (EXCLUDED.conversations, EXCLUDED.open_conversations)
        """,
        buckets,
    )
