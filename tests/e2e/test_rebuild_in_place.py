"""In-place rebuild: wipe a service's tables, replay with its own group, same state."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

from parley_dev.digest import digest
from parley_dev.rebuild import rebuild
from parley_sender import tables as sender_tables
from parley_shared import topics
from parley_shared.db import create_pool, enqueue
from parley_shared.events import (
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    caused_by,
    decode,
    new_envelope,
)
from parley_shared.identity import conversation_key, inbound_event_id
from parley_shared.kafka import KafkaPublisher
from parley_shared.migrations import migrate
from parley_shared.settings import BusSettings
from tests.helpers import read_topic


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


async def test_rebuild_in_place_publishes_the_outbox_before_wiping_it(
    bus_settings: BusSettings, database: str
) -> None:
    """A reply Twilio accepted whose ``message.sent`` was still in the sender's outbox: the
    rebuild must not forget it (the sender would send that reply a second time)."""
    inbound = new_envelope(
        MessageReceived(
            message_sid=f"SM{1:032x}",
            account_sid="AC1",
            channel="sms",
            participant="+15550600001",
            our_address="+15550000001",
            body="hello",
        ),
        event_id=inbound_event_id(f"SM{1:032x}"),
        account_sid="AC1",
        conversation_key="cv_rebuild",
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    reply = caused_by(
        inbound,
        ReplyGenerated(
            in_reply_to=inbound.event_id,
            inbound_message_sid=inbound.payload.message_sid,
            inbound_at=inbound.occurred_at,
            channel="sms",
            participant="+15550600001",
            our_address="+15550000001",
            body="hi",
            source="ai",
        ),
        event_id=uuid.uuid4(),
        occurred_at=inbound.occurred_at + timedelta(seconds=1),
    )
    sent = caused_by(
        reply,
        MessageSent(
            reply_event_id=reply.event_id,
            channel="sms",
            participant="+15550600001",
            our_address="+15550000001",
            body="hi",
            in_reply_to=inbound.event_id,
            message_sid=f"SM{2:032x}",
            status="queued",
        ),
        event_id=uuid.uuid4(),
        occurred_at=reply.occurred_at + timedelta(seconds=1),
    )
    publisher = KafkaPublisher(bus_settings)
    await publisher.publish_many(
        [(topics.MESSAGE_RECEIVED, inbound), (topics.REPLY_GENERATED, reply)]
    )
    await publisher.stop()
    pool = await create_pool(database)
    try:
        await migrate(pool, sender_tables.SERVICE, sender_tables.MIGRATIONS)
        async with pool.acquire() as conn:
            await enqueue(conn, sender_tables.SERVICE, [(topics.MESSAGE_SENT, sent)])

        await rebuild("sender", database_url=database, bus=bus_settings, out=None)

        row = await pool.fetchrow(
            "SELECT state, message_sid FROM sender_outbound WHERE reply_event_id = $1",
            reply.event_id,
        )
        assert (row["state"], row["message_sid"]) == ("sent", f"SM{2:032x}")
        assert await pool.fetchval("SELECT count(*) FROM sender_outbox") == 0
    finally:
        await pool.close()
    [record] = await read_topic(bus_settings, topics.MESSAGE_SENT, expect=1)
    assert decode(record.value or b"").event_id == sent.event_id
