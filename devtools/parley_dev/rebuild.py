"""Rebuild a service's tables from the event log.

    python -m parley_dev.rebuild conversation            # in place: stop the service first
    python -m parley_dev.rebuild all --schema v2         # beside the live tables

In place, the service's tables in its schema are dropped and rebuilt by consuming every topic
it reads from the first offset, with the service's own consumer group; then the command keeps
consuming live (``--follow``) or exits, and the service is started again where it stopped.
Beside the live ones (``--schema NAME``), a new projection version is built in schema
``<service>_<NAME>`` with group ``parley-<service>-<NAME>``; once it has caught up, switch the
service to it with ``DB_SCHEMA`` and ``KAFKA_GROUP_ID``. Rebuilding runs only the projection
side of a service: no model is called and nothing is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from parley_ai import tables as ai_tables
from parley_ai.app import CONSUMED as AI_TOPICS
from parley_ai.service import AiProjection
from parley_analytics import tables as analytics_tables
from parley_analytics.app import CONSUMED as ANALYTICS_TOPICS
from parley_analytics.service import AnalyticsService
from parley_conversation import tables as conversation_tables
from parley_conversation.app import CONSUMED as CONVERSATION_TOPICS
from parley_conversation.service import ConversationService
from parley_sender import tables as sender_tables
from parley_sender.app import CONSUMED as SENDER_TOPICS
from parley_sender.projection import SenderProjection
from parley_shared import metrics
from parley_shared.bus import Publisher
from parley_shared.consumer import EventConsumer
from parley_shared.db import TRANSIENT_DB_ERRORS, Pool, create_pool
from parley_shared.kafka import KafkaPublisher
from parley_shared.keyring import Keyring, SealingPublisher
from parley_shared.migrations import Migration, migrate
from parley_shared.outbox import OutboxRelay
from parley_shared.projection import Projection as ProjectionBase
from parley_shared.runtime import tune_gc
from parley_shared.settings import BusSettings


@dataclass(frozen=True)
class Projection:
    service: str
    migrations: Sequence[Migration]
    topics: list[str]
    build: Callable[[Pool], ProjectionBase]


PROJECTIONS = {
    p.service: p
    for p in (
        Projection(
            "conversation",
            conversation_tables.MIGRATIONS,
            CONVERSATION_TOPICS,
            lambda pool: ConversationService(pool, relay=None),
        ),
        Projection("ai", ai_tables.MIGRATIONS, AI_TOPICS, AiProjection),
        Projection("sender", sender_tables.MIGRATIONS, SENDER_TOPICS, SenderProjection),
        Projection(
            "analytics",
            analytics_tables.MIGRATIONS,
            ANALYTICS_TOPICS,
            AnalyticsService,
        ),
    )
}


async def tables_of(pool: Pool, service: str) -> list[str]:
    """The service's tables in the pool's schema."""
    rows = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1",
        f"{service}\\_%",
    )
    return [row["tablename"] for row in rows]


async def wipe(pool: Pool, service: str) -> None:
    tables = await tables_of(pool, service)
    async with pool.acquire() as conn, conn.transaction():
        for table in tables:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')


async def drain_outbox(pool: Pool, service: str, publisher: Publisher) -> int:
    """Publish what the service committed but had not published yet, before a wipe.

    An outbox row is an outcome that exists nowhere else (e.g. a reply Twilio accepted):
    dropped with the tables, the replay would not know it and the sender would send again.
    Published, it is on the log the rebuild replays. Raises if the broker does not take it,
    and then nothing is wiped."""
    if await pool.fetchval("SELECT to_regclass($1)", f"{service}_outbox") is None:
        return 0
    relay = OutboxRelay(pool, service, publisher)
    published = 0
    while moved := await relay.publish_pending():
        published += moved
    return published


class Progress:
    """Counts events, and knows the end of each partition as it was when the rebuild began."""

    def __init__(self, name: str, out: TextIO | None) -> None:
        self.name = name
        self.out = out
        self.done = 0
        self.started = time.monotonic()
        # After the first poll: the group has its partitions (a new group first waits out
        # part of its session time-out) and consumption runs at its steady rate.
        self.first_poll: tuple[float, int] | None = None
        self.last_print = 0.0
        self.targets: dict[TopicPartition, int] | None = None
        self.starts: dict[TopicPartition, int] = {}
        # Where this rebuild has applied each partition up to (its next offset).
        self.applied: dict[TopicPartition, int] = {}
        self.remaining: int | None = None
        metrics.gauge(
            "parley_rebuild_remaining_events",
            lambda: -1.0 if self.remaining is None else float(self.remaining),
            "Events a rebuild has still to apply before it is caught up (-1: not started)",
            service=name,
        )

    async def caught_up(
        self, consumer: AIOKafkaConsumer, applied: Mapping[TopicPartition, int], events: int
    ) -> bool:
        self.done += events
        metrics.count(
            "parley_rebuild_events", events, "Events applied by rebuilds", service=self.name
        )
        if self.first_poll is None and events:
            self.first_poll = (time.monotonic(), self.done)
        self.applied.update(applied)
        assignment = consumer.assignment()
        if self.targets is None and assignment:
            partitions = list(assignment)
            self.targets = await consumer.end_offsets(partitions)
            self.starts = await consumer.beginning_offsets(partitions)
        if not self.targets:
            return False
        remaining = sum(
            max(end - self.applied.get(partition, self.starts.get(partition, 0)), 0)
            for partition, end in self.targets.items()
        )
        self.remaining = remaining
        self._report(remaining)
        return remaining == 0

    def steady_rate(self) -> float | None:
        """Events per second from the end of the first poll to now."""
        if self.first_poll is None:
            return None
        at, done = self.first_poll
        elapsed = time.monotonic() - at
        return (self.done - done) / elapsed if elapsed > 0 and self.done > done else None

    def _report(self, remaining: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.out is None or (not force and now - self.last_print < 1.0 and remaining):
            return
        self.last_print = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        eta = f"{remaining / rate:.0f}s" if rate and remaining else "0s"
        self.out.write(
            f"{self.name}: {self.done} events, {rate:,.0f}/s, {remaining} to go, about {eta} left\n"
        )
        self.out.flush()


class Statistics:
    """The planner's statistics of the tables a rebuild fills, kept fresh as they grow.

    The tables start empty, and a statement prepared then keeps a plan made for empty tables
    (a sequential scan where an index look-up is due) until an ANALYZE invalidates it.
    Autovacuum runs one after ``autovacuum_naptime`` (a minute by default), by when a replay
    looking conversations up by scans has slowed to a fraction of its speed. So the rebuild
    analyzes its tables itself each time it has applied ten times more events."""

    def __init__(self, pool: Pool, service: str, first: int = 2_000) -> None:
        self.pool = pool
        self.service = service
        self.next = first

    async def after(self, done: int) -> None:
        if done < self.next:
            return
        self.next = done * 10
        tables = await tables_of(self.pool, self.service)
        if tables:
            await self.pool.execute("ANALYZE " + ", ".join(f'"{table}"' for table in tables))


async def rebuild(
    service: str,
    *,
    database_url: str,
    bus: BusSettings,
    schema: str = "public",
    group_id: str | None = None,
    follow: bool = False,
    out: TextIO | None = sys.stderr,
    progress: Progress | None = None,
) -> int:
    """Rebuild one service's projection; returns how many events it consumed."""
    projection = PROJECTIONS[service]
    pool = await create_pool(database_url, schema=schema, name=f"{service}-rebuild")
    publisher = KafkaPublisher(bus)
    keyring = Keyring(pool, schema=bus.keyring_schema, cache_s=bus.keyring_cache_s)
    progress = progress or Progress(service, out)
    try:
        await publisher.start()
        await keyring.ensure()
        await drain_outbox(pool, service, SealingPublisher(publisher, keyring))
        await wipe(pool, service)
        await migrate(pool, service, projection.migrations)
        state = projection.build(pool)
        statistics = Statistics(pool, service)
        consumer: EventConsumer

        async def on_poll(
            kafka: AIOKafkaConsumer, applied: Mapping[TopicPartition, int], events: int
        ) -> None:
            if await progress.caught_up(kafka, applied, events) and not follow:
                consumer.stop()
            await statistics.after(progress.done)

        consumer = EventConsumer(
            bus,
            topics=projection.topics,
            group_id=group_id or f"parley-{service}",
            handler=state.handle_batch,
            prepare=keyring.opener(state.reads_personal),
            transient=TRANSIENT_DB_ERRORS,
            publisher=publisher,
            from_beginning=True,
            on_poll=on_poll,
        )
        await consumer.run()
        if out is not None:
            elapsed = time.monotonic() - progress.started
            out.write(f"{service}: caught up, {progress.done} events in {elapsed:.1f}s\n")
        return progress.done
    finally:
        await publisher.stop()
        await pool.close()


def _targets(name: str) -> list[str]:
    return list(PROJECTIONS) if name == "all" else [name]


async def _main(args: argparse.Namespace) -> None:
    from parley_shared.settings import ProjectionSettings

    settings = ProjectionSettings()
    tune_gc()
    jobs: list[Awaitable[int]] = []
    for service in _targets(args.service):
        schema = f"{service}_{args.schema}" if args.schema else settings.db_schema
        group = (
            f"parley-{service}-{args.schema}"
            if args.schema
            else settings.kafka_group_id or f"parley-{service}"
        )
        jobs.append(
            rebuild(
                service,
                database_url=settings.database_url,
                bus=settings,
                schema=schema,
                group_id=group,
                follow=args.follow,
            )
        )
    await asyncio.gather(*jobs)
    if args.schema:
        print(
            f"caught up. Switch a service with DB_SCHEMA=<service>_{args.schema} "
            f"KAFKA_GROUP_ID=parley-<service>-{args.schema}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("service", choices=[*PROJECTIONS, "all"])
    parser.add_argument("--schema", help="build beside the live tables, in <service>_SCHEMA")
    parser.add_argument(
        "--follow", action="store_true", help="keep consuming live events once caught up"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics (progress, consumer lag) on this port while it runs",
    )
    args = parser.parse_args(argv)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        metrics.setup_metrics("parley-rebuild")
        start_http_server(args.metrics_port)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
