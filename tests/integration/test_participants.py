"""Rollups read by range: distinct participants (by channel and number, over ranges that cut
days, per hour, day and week) and latency histograms (daily where a day fits, hourly around)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from parley_analytics import participants, tables
from parley_analytics.funnel import add_latencies
from parley_analytics.service import AnalyticsService
from parley_analytics.views import Filters, latencies
from parley_shared.db import Pool
from parley_shared.events import Channel, MessageReceived, new_envelope
from parley_shared.migrations import migrate

T0 = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)  # a Monday, late evening
SMS, WHATSAPP = "+15550001111", "whatsapp:+15550001111"
OTHER = "+15550002222"


async def write(pool: Pool, at: datetime, participant: str, ours: str) -> None:
    channel: Channel = "whatsapp" if ours.startswith("whatsapp:") else "sms"
    event = new_envelope(
        MessageReceived(
            message_sid=f"SM{uuid4().hex}",
            account_sid="AC1",
            channel=channel,
            participant=participant,
            our_address=ours,
            body="hi",
        ),
        event_id=uuid4(),
        conversation_key=f"cv_{participant}_{ours}",
        account_sid="AC1",
        occurred_at=at,
    )
    await AnalyticsService(pool).handle_batch([event])


async def test_participants_by_filter_range_and_period(pool: Pool) -> None:
    await migrate(pool, tables.SERVICE, tables.MIGRATIONS)
    # Three people on SMS to our number, one of them also to the other number; two on
    # WhatsApp; one person writes again two hours later, after midnight.
    await write(pool, T0, "+1001", SMS)
    await write(pool, T0 + timedelta(hours=2), "+1001", SMS)
    await write(pool, T0, "+1002", SMS)
    await write(pool, T0 + timedelta(days=1), "+1003", SMS)
    await write(pool, T0 + timedelta(days=1), "+1003", OTHER)
    await write(pool, T0, "whatsapp:+1004", WHATSAPP)
    await write(pool, T0 + timedelta(days=8), "whatsapp:+1005", WHATSAPP)

    async def count(
        start: datetime, end: datetime, channel: str | None = None, number: str | None = None
    ) -> int:
        return await participants.distinct(pool, Filters(start, end, channel, number))

    everything = (T0 - timedelta(days=1), T0 + timedelta(days=10))
    assert await count(*everything) == 5
    assert await count(*everything, channel="sms") == 3
    assert await count(*everything, channel="whatsapp") == 2
    assert await count(*everything, number="+15550001111") == 5
    assert await count(*everything, number=OTHER) == 1
    assert await count(*everything, channel="sms", number="+15550001111") == 3
    # Ranges that cut days: edge hours count, hours outside do not.
    assert await count(T0 + timedelta(minutes=40), T0 + timedelta(hours=2)) == 1
    assert await count(T0 - timedelta(hours=1), T0 + timedelta(minutes=1)) == 3
    assert await count(T0 + timedelta(hours=3), T0 + timedelta(days=2)) == 1

    per_day = await participants.series(pool, Filters(*everything, None, None), "day")
    assert per_day[datetime(2026, 11, 2, tzinfo=UTC)] == 3
    assert per_day[datetime(2026, 11, 3, tzinfo=UTC)] == 2  # +1001 after midnight, +1003
    per_hour = await participants.series(pool, Filters(*everything, "sms", None), "hour")
    assert per_hour[datetime(2026, 11, 2, 22, tzinfo=UTC)] == 2
    per_week = await participants.series(pool, Filters(*everything, None, None), "week")
    assert per_week == {
        datetime(2026, 11, 2, tzinfo=UTC): 4,
        datetime(2026, 11, 9, tzinfo=UTC): 1,
    }


async def test_latency_histograms_combine_whole_days_and_edge_hours(pool: Pool) -> None:
    await migrate(pool, tables.SERVICE, tables.MIGRATIONS)
    async with pool.acquire() as conn:
        await add_latencies(
            conn,
            [
                (T0, "sms", SMS, "reply", 100.0, 1),  # Mon 22:30
                (T0 + timedelta(hours=2), "sms", SMS, "reply", 200.0, 1),  # Tue 00:30
                (T0 + timedelta(days=1), "whatsapp", WHATSAPP, "reply", 400.0, 1),  # Tue 22:30
                (T0 + timedelta(days=1), "whatsapp", WHATSAPP, "reply", 400.0, -1),  # taken back
                (T0 + timedelta(days=3), "sms", OTHER, "reply", 800.0, 1),  # Thu 22:30
            ],
        )

    async def reply(
        start: datetime, end: datetime, channel: str | None = None
    ) -> tuple[int, float]:
        found = (await latencies(pool, Filters(start, end, channel, None))).get("reply")
        return (sum(n for _, n in found.bins), found.total_ms) if found else (0, 0.0)

    # Whole Tuesday and Wednesday from the daily table, Monday 22:00 and Thursday 00:00-23:00
    # from the hourly one.
    assert await reply(T0 - timedelta(minutes=10), T0 + timedelta(days=3, hours=1)) == (3, 1100.0)
    # Hours are the finest grain: the hour the range ends in counts whole.
    assert await reply(T0 + timedelta(minutes=40), T0 + timedelta(days=3)) == (2, 1000.0)
    assert await reply(T0 + timedelta(minutes=40), T0 + timedelta(days=2)) == (1, 200.0)
    assert await reply(T0 - timedelta(days=1), T0 + timedelta(days=5), "sms") == (3, 1100.0)
    assert await reply(T0 - timedelta(days=1), T0 + timedelta(days=5), "whatsapp") == (0, 0.0)
