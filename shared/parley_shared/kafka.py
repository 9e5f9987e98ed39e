"""aiokafka adapters: an acknowledged publisher and topic set-up (the consumer is in
``parley_shared.consumer``).

Only features that both Apache Kafka and Tansu support are used: no idempotent or
transactional producer (Tansu refuses them), no ``latest`` offset reset, no admin listing of
group offsets. Exactly-once effects come from event ids recorded by each consumer instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from parley_shared import metrics
from parley_shared.bus import BrokerUnavailable
from parley_shared.events import Envelope, encode
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics
from parley_shared.tracing import headers_for

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class KafkaPublisher:
    """Publishes with acks=all and returns only after the broker's acknowledgement."""

    def __init__(self, settings: BusSettings, *, timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._topics = Topics(settings.kafka_topic_prefix)
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect now if the broker is there; a later publish retries if it was not."""
        try:
            await self._ensure_producer()
        except BrokerUnavailable as exc:
            log.warning("broker not reachable at start-up (%s); will retry on publish", exc)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                acks="all",
                enable_idempotence=False,
                request_timeout_ms=int(self._timeout_s * 1000),
                linger_ms=self._settings.kafka_linger_ms,
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                await producer.stop()
                raise BrokerUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
            self._producer = producer
            return producer

    async def publish(self, topic: str, event: Envelope) -> None:
        await self.publish_raw(
            self._topics.name(topic),
            key=event.conversation_key.encode("utf-8"),
            value=encode(event),
            headers=headers_for(event.traceparent),
        )

    async def publish_raw(
        self,
        physical_topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        producer = await self._ensure_producer()
        began = time.perf_counter()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(physical_topic, value, key=key, headers=list(headers)),
                self._timeout_s,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"no acknowledgement from Kafka: {exc!r}") from exc
        self._published(self._topics.logical(physical_topic), began)

    @staticmethod
    def _published(topic: str, began: float) -> None:
        metrics.observe(
            "parley_kafka_publish_duration",
            time.perf_counter() - began,
            "From handing events to the producer to the broker's acknowledgement",
            topic=topic,
        )

    async def publish_many(self, events: Sequence[tuple[str, Envelope]]) -> None:
        """Hand every event to the producer first, then wait for all acknowledgements: one
        round of broker waits for a batch instead of one per event. The producer keeps the
        order of events with the same key (same partition)."""
        if not events:
            return
        producer = await self._ensure_producer()
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                pending = [
                    await producer.send(
                        self._topics.name(topic),
                        encode(event),
                        key=event.conversation_key.encode("utf-8"),
                        headers=headers_for(event.traceparent),
                    )
                    for topic, event in events
                ]
                await asyncio.gather(*pending)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"no acknowledgement from Kafka: {exc!r}") from exc
        for topic in {topic for topic, _ in events}:
            self._published(topic, began)

    async def ping(self) -> bool:
        """True when the broker answers a metadata request now."""
        try:
            producer = await self._ensure_producer()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout_s)
        except (BrokerUnavailable, KafkaError, OSError, TimeoutError):
            return False
        return True


async def ensure_topics(settings: BusSettings, topics: Sequence[str] | None = None) -> None:
    """Create the contract's topics (and dead-letter topics) when missing; safe to repeat."""
    names = Topics(settings.kafka_topic_prefix).every() if topics is None else list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=settings.kafka_topic_partitions,
                    replication_factor=settings.kafka_replication_factor,
                    topic_configs={"retention.ms": str(settings.kafka_retention_ms)},
                )
                for name in names
            ]
        )
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: {code} {message}")
    finally:
        await admin.close()
