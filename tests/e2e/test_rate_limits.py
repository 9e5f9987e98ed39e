"""An abusive sender stops getting AI replies past the per-minute limit; the reason is kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from parley_shared.db import create_pool
from tests.e2e.conftest import Parley, eventually
from tests.e2e.test_loop import replies_to


@pytest.mark.parametrize("parley", [{"ai_rate_limit_per_minute": 3}], indirect=True)
async def test_messages_past_the_limit_in_a_minute_get_no_reply(parley: Parley) -> None:
    flood, calm = "+15550150001", "+15550150002"
    for i in range(6):
        await parley.text(flood, f"spam {i}")
    await parley.text(calm, "a normal question")
    await replies_to(parley, calm, 1)
    pool = await create_pool(parley.database)
    try:

        async def decided() -> list[str] | None:
            reasons = await pool.fetch(
                "SELECT coalesce(reason, state) AS r FROM ai_inbox "
                "WHERE convert_from(event, 'UTF8')::jsonb -> 'payload' ->> 'participant' = $1 "
                "ORDER BY occurred_at",
                flood,
            )
            found = [r["r"] for r in reasons]
            return found if len(found) == 6 and "pending" not in found else None

        reasons = await eventually(decided)
    finally:
        await pool.close()
    assert reasons == ["done"] * 3 + ["rate_limited"] * 3
    await asyncio.sleep(0.5)
    assert [m.body for m in parley.twilio.for_number(flood)] == [
        f"AI says: spam {i}" for i in range(3)
    ]


@pytest.mark.parametrize("parley", [{"sender_segments_per_second": 4.0}], indirect=True)
async def test_replies_from_one_number_are_paced_not_refused(parley: Parley) -> None:
    numbers = [f"+155501501{i:02d}" for i in range(8)]
    began = datetime.now(UTC)
    for number in numbers:
        await parley.text(number, "hello")
    await eventually(lambda: _sent(parley, len(numbers)), timeout_s=30)
    # Four one-segment replies a second from one number: each gets a slot a quarter second
    # after the one before, and none leaves before its slot, so the eighth leaves 1.75 s
    # after the first could at the earliest (unpaced, all eight leave within a few tenths).
    last = max(m.created for m in parley.twilio.sent)
    assert (last - began).total_seconds() >= 1.75
    assert parley.twilio.create_calls == len(numbers)  # queued here, nothing refused


async def _sent(parley: Parley, count: int) -> bool:
    return len(parley.twilio.sent) >= count
