"""The Kafka bus: acknowledged publishing, at-least-once consumption, dead letters, tracing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_shared import topics
from parley_shared.consumer import EventConsumer
from parley_shared.events import Envelope, StatusUpdated, new_envelope
from parley_shared.kafka import KafkaPublisher, ensure_topics
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics
from tests.helpers import read_topic


def status(n: int) -> Envelope:
    payload = StatusUpdated(
        message_sid=f"SM{n:032d}",
        account_sid="AC1",
        status="sent",
        channel="sms",
        participant="+1555",
        our_address="+1666",
    )
    return new_envelope(
        payload,
        event_id=uuid.uuid4(),
        conversation_key=f"cv_{n % 3}",
        account_sid="AC1",
        occurred_at=datetime.now(UTC),
    )


async def test_topics_are_created_idempotently(bus_settings: BusSettings) -> None:
    await ensure_topics(bus_settings)
    await ensure_topics(bus_settings)
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bus_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(Topics(bus_settings.kafka_topic_prefix).every()) <= existing


async def test_consumer_dead_letters_garbage_and_goes_on(bus_settings: BusSettings) -> None:
    publisher = KafkaPublisher(bus_settings)
    await publisher.start()
    physical = Topics(bus_settings.kafka_topic_prefix).name(topics.STATUS_UPDATED)
    try:
        await publisher.publish(topics.STATUS_UPDATED, status(1))
        await publisher.publish_raw(physical, key=b"cv_1", value=b"{not json")
        await publisher.publish(topics.STATUS_UPDATED, status(2))
        seen: list[Envelope] = []

        async def handle(events: Sequence[Envelope]) -> None:
            seen.extend(events)

        consumer = EventConsumer(
            bus_settings,
            topics=[topics.STATUS_UPDATED],
            group_id="g1",
            handler=handle,
            publisher=publisher,
        )
        task = asyncio.create_task(consumer.run())
        for _ in range(200):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.05)
        consumer.stop()
        await task
        assert sorted(e.payload.message_sid for e in seen) == [  # type: ignore[attr-defined]
            f"SM{1:032d}",
            f"SM{2:032d}",
        ]
        [dead] = await read_topic(bus_settings, "status.updated.dlq", expect=1)
        headers = dict(dead.headers)
        assert dead.value == b"{not json"
        assert headers["parley-dlq-reason"].startswith(b"undecodable")
        assert headers["parley-dlq-group"] == b"g1"
    finally:
        await publisher.stop()


async def test_an_event_of_a_newer_version_holds_the_consumer_instead_of_dead_lettering(
    bus_settings: BusSettings,
) -> None:
    """A rolling deploy: an old reader meets an event a new release wrote. It must neither
    dead-letter it nor commit past it; the next owner of the group reads it again."""
    publisher = KafkaPublisher(bus_settings)
    physical = Topics(bus_settings.kafka_topic_prefix).name(topics.STATUS_UPDATED)
    newer = status(3).model_dump(mode="json") | {"schema_version": 99}
    await publisher.publish_raw(physical, key=b"cv_0", value=json.dumps(newer).encode())
    await publisher.publish(topics.STATUS_UPDATED, status(4))
    seen: list[Envelope] = []

    async def handle(events: Sequence[Envelope]) -> None:
        seen.extend(events)

    def consumer() -> EventConsumer:
        return EventConsumer(
            bus_settings,
            topics=[topics.STATUS_UPDATED],
            group_id="g-upgrade",
            handler=handle,
            publisher=publisher,
        )

    old = consumer()
    task = asyncio.create_task(old.run())
    for _ in range(200):
        if old.held is not None:
            break
        await asyncio.sleep(0.05)
    old.stop()
    await task
    assert old.held is not None and "newer than this reader" in old.held
    assert await read_topic(bus_settings, "status.updated.dlq", expect=1, timeout_s=1.0) == []
    # Nothing was committed: the group's next consumer (here the same code) starts over.
    again = consumer()
    task = asyncio.create_task(again.run())
    for _ in range(200):
        if again.held is not None:
            break
        await asyncio.sleep(0.05)
    again.stop()
    await task
    await publisher.stop()
    assert again.held == old.held


async def test_offsets_are_committed_only_after_the_handler_succeeds(
    bus_settings: BusSettings,
) -> None:
    publisher = KafkaPublisher(bus_settings)
    event = status(7)
    await publisher.publish(topics.STATUS_UPDATED, event)
    attempts: list[uuid.UUID] = []

    async def flaky(received: Sequence[Envelope]) -> None:
        attempts.extend(e.event_id for e in received)
        if len(attempts) == 1:
            raise ConnectionError("database went away")

    consumer = EventConsumer(
        bus_settings,
        topics=[topics.STATUS_UPDATED],
        group_id="g2",
        handler=flaky,
        publisher=publisher,
    )
    task = asyncio.create_task(consumer.run())
    for _ in range(200):
        if len(attempts) >= 2:
            break
        await asyncio.sleep(0.05)
    consumer.stop()
    await task
    assert attempts == [event.event_id, event.event_id]
    # A new consumer of the same group starts after the committed offset: nothing redelivered.
    again: list[Envelope] = []

    async def record(received: Sequence[Envelope]) -> None:
        again.extend(received)

    second = EventConsumer(
        bus_settings,
        topics=[topics.STATUS_UPDATED],
        group_id="g2",
        handler=record,
        publisher=publisher,
    )
    task = asyncio.create_task(second.run())
    await second.started.wait()
    await asyncio.sleep(1.5)
    second.stop()
    await task
    await publisher.stop()
    assert again == []


async def test_trace_context_travels_in_headers(
    bus_settings: BusSettings, spans: InMemorySpanExporter
) -> None:
    publisher = KafkaPublisher(bus_settings)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("webhook") as span:
        await publisher.publish(topics.STATUS_UPDATED, status(3))
        trace_id = format(span.get_span_context().trace_id, "032x")
    await publisher.stop()
    [record] = await read_topic(bus_settings, "status.updated", expect=1)
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == trace_id
