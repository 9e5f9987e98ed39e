"""Outbound pacing per sending number: messages to send are given send times no closer than
a number's rate allows (Twilio takes 1 segment a second from a long code, more from a
Messaging Service or short code), so a burst is queued here instead of overflowing Twilio's
queue. Off unless rates are configured.

Send times are scheduling, not state: a rebuild does not reproduce them, and the digest of
the sender's tables leaves ``sender_pacing`` out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from parley_shared.db import Connection

DDL = """
CREATE TABLE IF NOT EXISTS sender_pacing (
    sender text PRIMARY KEY,
    next_at timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class Pacing:
    """Segments per second per sender (a number or a Messaging Service SID); 0 = unpaced."""

    per_second: float = 0.0
    by_sender: Mapping[str, float] = field(default_factory=dict)

    def cost_s(self, sender: str, segments: int) -> float:
        rate = self.by_sender.get(sender, self.per_second)
        return max(segments, 1) / rate if rate > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return self.per_second > 0 or any(rate > 0 for rate in self.by_sender.values())


def slots(
    pacing: Pacing,
    items: Sequence[tuple[UUID, str, int]],
    next_free: Mapping[str, datetime],
    now: datetime,
) -> tuple[dict[UUID, datetime], dict[str, datetime]]:
    """Send times for (message, sender, segments), in order, each sender's next free time
    after them."""
    free = dict(next_free)
    due: dict[UUID, datetime] = {}
    for message, sender, segments in items:
        cost = pacing.cost_s(sender, segments)
        if cost <= 0:
            continue
        at = max(now, free.get(sender, now))
        due[message] = at
        free[sender] = at + timedelta(seconds=cost)
    return due, {s: t for s, t in free.items() if s not in next_free or t != next_free[s]}


async def schedule(
    conn: Connection, pacing: Pacing, items: Sequence[tuple[UUID, str, int]]
) -> list[float]:
    """Give newly queued messages their send times (in the projection's transaction);
    returns in how many seconds each is due."""
    if not pacing.enabled or not items:
        return []
    senders = sorted({sender for _, sender, _ in items})
    # Locked: two replicas queueing for one number take consecutive slots.
    rows = await conn.fetch(
        "SELECT sender, next_at FROM sender_pacing WHERE sender = ANY($1::text[]) "
        "ORDER BY sender FOR UPDATE",
        senders,
    )
    queued = {
        row["reply_event_id"]
        for row in await conn.fetch(
            "SELECT reply_event_id FROM sender_outbound WHERE reply_event_id = ANY($1::uuid[]) "
            "AND state = 'pending' AND attempts = 0",
            [message for message, _, _ in items],
        )
    }
    now = datetime.now(UTC)
    due, free = slots(
        pacing,
        [item for item in items if item[0] in queued],
        {row["sender"]: row["next_at"] for row in rows},
        now,
    )
    if due:
        await conn.execute(
            "UPDATE sender_outbound o SET due_at = u.at FROM unnest($1::uuid[], "
            "$2::timestamptz[]) AS u(id, at) WHERE o.reply_event_id = u.id",
            list(due),
            list(due.values()),
        )
    if free:
        await conn.execute(
            "INSERT INTO sender_pacing SELECT * FROM unnest($1::text[], $2::timestamptz[]) "
            "ON CONFLICT (sender) DO UPDATE SET next_at = EXCLUDED.next_at",
            list(free),
            list(free.values()),
        )
    return [(at - now).total_seconds() for at in due.values()]
