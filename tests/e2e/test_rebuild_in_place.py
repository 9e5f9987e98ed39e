"""In-place rebuild: wipe a service's tables, replay with its own group, same state."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from parley_dev.digest import digest
from parley_dev.rebuild import rebuild
from parley_shared import topics
from parley_shared.db import create_pool
from parley_shared.events import MessageReceived, new_envelope
from parley_shared.identity import conversation_key, inbound_event_id
from parley_shared.kafka import KafkaPublisher
from parley_shared.settings import BusSettings


async def test_rebuild_in_place_reproduces_state_and_leaves_the_group_at_the_end(
    bus_settings: BusSettings, database: str
) -> None:
    publisher = KafkaPublisher(bus_settings)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(40):
        participant = f"+1555060{i % 7:04d}"
        sid = f"SM{i:032x}"
        payload = MessageReceived(
            message_sid=sid,
            account_sid="AC1",
            channel="sms",
            participant=participant,
            our_address="+15550000001",
            body="STOP" if i == 5 else f"message {i}",
        )
        await publisher.publish(
            topics.MESSAGE_RECEIVED,
            new_envelope(
                payload,
                event_id=inbound_event_id(sid),
                account_sid="AC1",
                conversation_key=conversation_key(
                    account_sid="AC1",
                    our_endpoint="+15550000001",
                    participant=participant,
                    channel="sms",
                ),
                occurred_at=start + timedelta(minutes=i),
            ),
        )
    await publisher.stop()

    out = io.StringIO()
    first = await rebuild(
        "analytics", database_url=database, bus=bus_settings, group_id="parley-analytics", out=out
    )
    assert first == 40
    assert "analytics: caught up, 40 events" in out.getvalue()
    pool = await create_pool(database)
    try:
        before = await digest(pool, "analytics")
        assert before["analytics_facts"][0] == 40
        assert await pool.fetchval("SELECT sum(opt_outs) FROM analytics_hourly") == 1

        again = await rebuild(
            "analytics",
            database_url=database,
            bus=bus_settings,
            group_id="parley-analytics",
            out=None,
        )
        assert again == 40  # wiped and replayed from the first offset
        assert await digest(pool, "analytics") == before
    finally:
        await pool.close()
