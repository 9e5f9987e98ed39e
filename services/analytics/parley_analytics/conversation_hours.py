"""Conversations opened per hour, and how many of those are still open, in the hourly rollup.

Counting them from the conversations themselves for every stats call grows with history (at a
million messages the count alone was most of ``/v1/stats``). Counting them incrementally is
simple: a conversation's opening time moves when an earlier message is read late, a close or
a reopen rewrites its thread, and a replay reads topics in another order. So each transaction
takes its threads' conversations before and after it (under the threads' locks) and moves the
counts by the difference: whatever the order events are read in, the counts are those of the
conversations in the end. Two index look-ups per batch, no scan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from uuid import UUID

from parley_shared.db import Connection, columns
from parley_shared.migrations import Migration

MIGRATION = Migration(
    "conversations per hour in the hourly rollup",
    """
    ALTER TABLE analytics_hourly
        ADD COLUMN IF NOT EXISTS conversations bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS open_conversations bigint NOT NULL DEFAULT 0;
    INSERT INTO analytics_hourly (bucket, channel, our_address, conversations,
                                  open_conversations)
    SELECT date_trunc('hour', opened_at), channel, our_address, count(*),
           count(*) FILTER (WHERE closed_at IS NULL)
    FROM analytics_conversations GROUP BY 1, 2, 3
    ON CONFLICT (bucket, channel, our_address) DO UPDATE
        SET conversations = EXCLUDED.conversations,
            open_conversations = EXCLUDED.open_conversations;
    """,
)


# A conversation as the hourly counts see it: (hour opened, channel, our address, open).
Counted = tuple[datetime, str, str, bool]


async def snapshot(conn: Connection, keys: Iterable[str]) -> dict[UUID, Counted]:
    """The conversations of these threads, as counted."""
    rows = await conn.fetch(
        "SELECT id, date_trunc('hour', opened_at) AS bucket, channel, our_address, "
        "closed_at IS NULL AS open FROM analytics_conversations "
        "WHERE conversation_key = ANY($1::text[])",
        list(keys),
    )
    return {r["id"]: (r["bucket"], r["channel"], r["our_address"], r["open"]) for r in rows}


async def count_changes(
    conn: Connection, before: Mapping[UUID, Counted], after: Mapping[UUID, Counted]
) -> None:
    """Move the hourly counts by what changed between two snapshots of the same threads."""
    delta: dict[tuple[datetime, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for sign, was, now in ((-1, before, after), (1, after, before)):
        for conversation, counted in was.items():
            if now.get(conversation) != counted:
                bucket, channel, ours, is_open = counted
                delta[bucket, channel, ours][0] += sign
                delta[bucket, channel, ours][1] += sign * is_open
    moved = [(key, n) for key, n in delta.items() if n != [0, 0]]
    if not moved:
        return
    await conn.execute(
        "INSERT INTO analytics_hourly (bucket, channel, our_address, conversations, "
        "open_conversations) SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], "
        "$4::bigint[], $5::bigint[]) ON CONFLICT (bucket, channel, our_address) DO UPDATE "
        "SET conversations = analytics_hourly.conversations + EXCLUDED.conversations, "
        "open_conversations = analytics_hourly.open_conversations "
        "+ EXCLUDED.open_conversations",
        *columns([(*key, *n) for key, n in moved], 5),
    )
