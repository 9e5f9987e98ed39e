"""The at-least-once consumer every projection and rebuild uses.

One poll (every partition it holds) is one handler call; its offsets are committed after it,
in the background; see ``EventConsumer``. Only features both Apache Kafka and Tansu support
are used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from opentelemetry import trace

from parley_shared import metrics
from parley_shared.bus import BatchHandler, BrokerUnavailable, Preparer
from parley_shared.events import DecodeError, Envelope, NewerVersion, decode
from parley_shared.kafka import KafkaPublisher
from parley_shared.offsets import OffsetCommitter
from parley_shared.polls import Fetched, Poll, Record
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics
from parley_shared.tracing import context_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.kafka")


class _SeekToBeginning(ConsumerRebalanceListener):  # type: ignore[misc]
    """Replays from the first offset on the first assignment (a rebuild), then behaves as
    usual: later rebalances resume from committed offsets."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._done = False

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        if not self._done and assigned:
            self._done = True
            await self._consumer.seek_to_beginning(*assigned)


def _outage_backoff(attempt: int) -> float:
    """Seconds before trying again while a dependency is down: doubling, at most 10."""
    return min(0.2 * 2.0**attempt, 10.0)


class TransientError(Exception):
    """A handler failure worth retrying forever (a dependency is down), never dead-lettered."""


TRANSIENT: tuple[type[Exception], ...] = (
    TransientError,
    BrokerUnavailable,
    OSError,
    TimeoutError,
    ConnectionError,
)


class EventConsumer:
    """Consumes topics in a consumer group and hands every poll's events to ``handler`` at once.

    Events are decoded and ``prepare``d (opened) in a fetch stage while the previous poll is
    applied, so that work fills the time an apply waits on the database. One poll, across
    all its partitions, is one handler call (one transaction in a
    projection); its offsets are handed to the committer after the handler returned, so after
    its effects are durable, and committed in the background (``offsets.py``). A crash before
    the commit redelivers, and handlers drop repeats by event id. Failures in
    ``transient`` (a dependency is down) are retried until they pass; any other failure makes
    the poll fall back to one event at a time, so that only a poison event is set aside: bytes
    that are not a readable event, and events a handler keeps rejecting, go to
    ``<topic>.dlq`` with the reason, and consumption goes on.
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        topics: Sequence[str],
        group_id: str,
        handler: BatchHandler,
        publisher: KafkaPublisher,
        prepare: Preparer | None = None,
        first: Sequence[str] = (),
        transient: tuple[type[Exception], ...] = (),
        max_attempts: int = 5,
        from_beginning: bool = False,
        read_model: bool = False,
        on_poll: Callable[[AIOKafkaConsumer, Mapping[TopicPartition, int], int], Awaitable[None]]
        | None = None,
    ) -> None:
        self._settings = settings
        self._topics = Topics(settings.kafka_topic_prefix)
        self._physical = [self._topics.name(t) for t in topics]
        self._group_id = group_id
        self._handler = handler
        self._prepare = prepare
        # Topics whose records are handled before the others of the same poll.
        self._first = {self._topics.name(t) for t in first}
        self._transient = TRANSIENT + transient
        self._publisher = publisher
        self._max_attempts = max_attempts
        self._from_beginning = from_beginning
        self._read_model = read_model
        self._on_poll = on_poll
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        # Why consumption is on hold, when it is: readiness reports it.
        self.held: str | None = None
        self._lag: dict[tuple[str, int], float] = {}
        metrics.gauge(
            "parley_consumer_held",
            lambda: 0.0 if self.held is None else 1.0,
            "1 while a consumer waits for a newer release to read an event version",
            group=group_id,
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._settings.kafka_max_poll_records,
            fetch_min_bytes=(
                self._settings.kafka_read_model_fetch_min_bytes if self._read_model else 1
            ),
            fetch_max_wait_ms=(
                self._settings.kafka_read_model_fetch_max_wait_ms
                if self._read_model
                else self._settings.kafka_fetch_max_wait_ms
            ),
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self._settings.kafka_heartbeat_interval_ms,
        )
        consumer.subscribe(
            self._physical,
            listener=_SeekToBeginning(consumer) if self._from_beginning else None,
        )
        # Two stages: while one poll is applied (mostly waiting on the database), the next
        # is fetched and decoded. A poll's offsets go to the committer once it is applied.
        fetched = Fetched(self._settings.kafka_max_poll_records)
        committer = OffsetCommitter(consumer, self._settings.kafka_commit_interval_ms / 1000)
        try:
            await consumer.start()
            self.started.set()
            committer.start()
            fetching = asyncio.create_task(self._fetch(consumer, fetched))
            try:
                while not self._stopping.is_set():
                    poll = await self._next(fetched, fetching)
                    if poll is None:
                        break
                    if poll.too_new:
                        await self._hold(poll.too_new)
                        break
                    await self._apply(poll)
                    committer.applied(poll.offsets)
                    if self._on_poll is not None:
                        # The offsets applied, not the consumer's position: that is ahead.
                        await self._on_poll(consumer, poll.offsets, poll.size)
            finally:
                fetching.cancel()
                await asyncio.gather(fetching, return_exceptions=True)
                await committer.close()
        finally:
            await consumer.stop()

    async def _next(self, fetched: Fetched, fetching: asyncio.Task[None]) -> Poll | None:
        """The next poll, or None once stopping; a failed fetch stage fails the consumer."""
        getting = asyncio.ensure_future(fetched.ready.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([getting, stopping, fetching], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if getting.done():
            return fetched.take()
        getting.cancel()
        if fetching.done():
            fetching.result()
        return None

    async def _fetch(self, consumer: AIOKafkaConsumer, fetched: Fetched) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            records = [record for part in batches.values() for record in part]
            decoded: list[tuple[Record, Envelope]] = []
            undecodable: list[tuple[Record, str]] = []
            too_new: list[tuple[Record, str]] = []
            for record in records:
                try:
                    decoded.append((record, decode(record.value or b"")))
                except NewerVersion as exc:
                    too_new.append((record, str(exc)))
                except DecodeError as exc:
                    undecodable.append((record, f"undecodable: {exc}"))
            if self._prepare is not None and decoded:
                opened = await self._prepared(self._prepare, [event for _, event in decoded])
                decoded = [
                    (record, event) for (record, _), event in zip(decoded, opened, strict=True)
                ]
            offsets = {
                partition: part[-1].offset + 1 for partition, part in batches.items() if part
            }
            for partition, position in offsets.items():
                self._note_lag(consumer, partition, position)
            await fetched.add(Poll(decoded, undecodable, offsets, len(records), too_new))

    async def _prepared(self, prepare: Preparer, events: list[Envelope]) -> list[Envelope]:
        """``events`` prepared, retrying while a dependency is down (as an apply does)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await prepare(events)
            except self._transient as exc:
                log.warning(
                    "transient failure preparing %d event(s), retrying: %r", len(events), exc
                )
                await asyncio.sleep(_outage_backoff(attempt))

    def _note_lag(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, position: int
    ) -> None:
        """How far this group is behind the partition's end, as of its last fetch."""
        end = consumer.highwater(partition)
        if end is None:
            return
        key = (partition.topic, partition.partition)
        if key not in self._lag:
            metrics.gauge(
                "parley_consumer_lag",
                lambda: self._lag.get(key, 0.0),
                "Events on the partition this group has not read yet (at its last fetch)",
                group=self._group_id,
                topic=self._topics.logical(partition.topic),
                partition=str(partition.partition),
            )
        self._lag[key] = float(max(end - position, 0))

    async def _hold(self, too_new: Sequence[tuple[Record, str]]) -> None:
        """Stop short of an event written by a newer release, committing nothing past it.

        During a rolling deploy an old replica can read what a new one wrote: dead-lettering
        it would lose a valid event, and skipping it would reorder a conversation. So this
        consumer holds (not ready, the gauge set) until it is replaced by a release that
        knows the version; the new owner of the partition reads the poll again.
        """
        record, reason = too_new[0]
        self.held = f"{record.topic}/{record.partition}/{record.offset}: {reason}"
        log.error("holding consumption until a newer release takes over: %s", self.held)
        await self._stopping.wait()

    async def _apply(self, poll: Poll) -> None:
        for record, reason in poll.undecodable:
            await self._dead_letter(record, reason)
        decoded = sorted(poll.events, key=lambda item: item[0].topic not in self._first)
        if not decoded:
            return
        # A poll holds several messages' events: its span belongs to the first traced one's
        # trace and links the others (OpenTelemetry's convention for batches).
        traced = [event.traceparent for _, event in decoded if event.traceparent is not None]
        with tracer.start_as_current_span(
            f"consume {len(decoded)} events",
            context=context_of(traced[0] if traced else None),
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.batch.message_count": len(decoded), "group": self._group_id},
        ) as span:
            if span.is_recording():
                for traceparent in dict.fromkeys(traced[1:]):
                    span.add_link(
                        trace.get_current_span(context_of(traceparent)).get_span_context()
                    )
            if await self._attempt([event for _, event in decoded], whole_poll=True):
                return
        log.warning("a poll of %d events failed; applying them one by one", len(decoded))
        for record, event in decoded:
            with tracer.start_as_current_span(
                f"consume {self._topics.logical(record.topic)}",
                context=context_of(event.traceparent),
                kind=trace.SpanKind.CONSUMER,
                attributes={"messaging.event_id": str(event.event_id), "group": self._group_id},
            ):
                if not await self._attempt([event], whole_poll=False):
                    await self._dead_letter(record, f"handler failed {self._max_attempts} times")

    async def _attempt(self, events: Sequence[Envelope], *, whole_poll: bool) -> bool:
        """Apply ``events``: True once done. Transient failures are retried without limit;
        other failures end at once for a whole poll, or after ``max_attempts``."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(events)
                return True
            except self._transient as exc:
                log.warning("transient failure on %d event(s), retrying: %r", len(events), exc)
                await asyncio.sleep(_outage_backoff(attempt))
            except Exception:
                log.exception("applying %d event(s) failed (attempt %d)", len(events), attempt)
                if whole_poll or attempt >= self._max_attempts:
                    return False
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))

    async def _dead_letter(self, record: Record, reason: str) -> None:
        source = self._topics.logical(record.topic)
        headers = [
            *(record.headers or ()),
            ("parley-dlq-reason", reason[:2000].encode("utf-8")),
            ("parley-dlq-origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("parley-dlq-group", self._group_id.encode("utf-8")),
        ]
        log.error(
            "dead-lettering %s/%s/%s: %s", record.topic, record.partition, record.offset, reason
        )
        metrics.count(
            "parley_dead_letters",
            1,
            "Records set aside on a dead-letter topic",
            topic=source,
            group=self._group_id,
        )
        while True:
            try:
                await self._publisher.publish_raw(
                    self._topics.dead_letter(source),
                    key=record.key,
                    value=record.value,
                    headers=headers,
                )
                return
            except BrokerUnavailable:
                await asyncio.sleep(1.0)
