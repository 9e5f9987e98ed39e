"""A durable broker killed and restarted under a consumer and a publisher: nothing the broker
acknowledged is lost, consumption resumes by itself, and committed offsets survive."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from parley_dev.infra import SeaweedS3, Tansu
from parley_shared import topics
from parley_shared.bus import BrokerUnavailable
from parley_shared.consumer import EventConsumer
from parley_shared.events import Envelope
from parley_shared.kafka import KafkaPublisher
from parley_shared.settings import BusSettings
from tests.integration.test_bus import status


@pytest.fixture
async def durable_broker() -> AsyncIterator[Tansu]:
    state = Path(tempfile.mkdtemp(prefix="parley-durable-"))
    s3 = SeaweedS3(state / "s3")
    broker = Tansu(state / "tansu")
    try:
        broker.storage, broker.env = await asyncio.to_thread(s3.start), s3.env
        await asyncio.to_thread(broker.start)
        yield broker
    finally:
        broker.stop()
        s3.stop()


async def publish(publisher: KafkaPublisher, events: Sequence[Envelope]) -> None:
    """Publish each event until the broker acknowledges it (it may be restarting)."""
    for event in events:
        while True:
            try:
                await publisher.publish(topics.STATUS_UPDATED, event)
                break
            except BrokerUnavailable:
                await asyncio.sleep(0.5)


async def test_a_restarted_durable_broker_loses_nothing_it_acknowledged(
    durable_broker: Tansu,
) -> None:
    settings = BusSettings(
        kafka_bootstrap_servers=durable_broker.bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
    )
    publisher = KafkaPublisher(settings, timeout_s=2.0)
    seen: set[uuid.UUID] = set()

    async def handle(events: Sequence[Envelope]) -> None:
        seen.update(e.event_id for e in events)

    def consumer() -> EventConsumer:
        return EventConsumer(
            settings,
            topics=[topics.STATUS_UPDATED],
            group_id="g-durable",
            handler=handle,
            publisher=publisher,
        )

    before = [status(n) for n in range(30)]
    after = [status(n) for n in range(30, 60)]
    first = consumer()
    running = asyncio.create_task(first.run())
    try:
        await publish(publisher, before)
        for _ in range(200):
            if len(seen) == len(before):
                break
            await asyncio.sleep(0.1)
        assert seen == {e.event_id for e in before}

        assert durable_broker.process is not None
        durable_broker.process.kill()
        await asyncio.to_thread(durable_broker.process.wait)
        await asyncio.to_thread(durable_broker.start)
        await publish(publisher, after)
        for _ in range(600):
            if len(seen) == len(before) + len(after):
                break
            await asyncio.sleep(0.1)
        assert seen == {e.event_id for e in [*before, *after]}
    finally:
        first.stop()
        await asyncio.gather(running, return_exceptions=True)

    # The group's offsets outlived the restart: a new member starts after them.
    seen.clear()
    second = consumer()
    running = asyncio.create_task(second.run())
    last = status(60)
    try:
        await second.started.wait()
        await publish(publisher, [last])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert seen == {last.event_id}
    finally:
        second.stop()
        await asyncio.gather(running, return_exceptions=True)
        await publisher.stop()
