"""Start-up helpers for service entrypoints: settings with readable errors, logging, tracing."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from parley_shared import metrics
from parley_shared.consumer import EventConsumer
from parley_shared.db import TRANSIENT_DB_ERRORS, Pool, answers, create_pool
from parley_shared.kafka import KafkaPublisher, ensure_topics
from parley_shared.keyring import Keyring, SealingPublisher
from parley_shared.leases import Inbox, LeaseWorker, R, T
from parley_shared.logs import setup_logging
from parley_shared.migrations import Migration, migrate
from parley_shared.outbox import OutboxRelay
from parley_shared.projection import Projection
from parley_shared.settings import BusSettings, ProjectionSettings, describe_errors
from parley_shared.tracing import setup_tracing

S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Read settings from the environment, or exit with one line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        sys.stderr.write(f"{cls.__name__}: {describe_errors(exc)}\n")
        raise SystemExit(2) from None


def access_log() -> bool:
    """Whether uvicorn logs every request (``ACCESS_LOG=1``). Off by default: at hundreds of
    webhooks a second it is a real share of the gateway's CPU, and ingress logs them anyway."""
    return os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes")


# FastAPI's own OpenTelemetry, trimmed to its HTTP server spans (the root of a message's
# trace). Its request metrics and exception logs would repeat ours (webhook RED, JSON logs) at
# every request, and a span per dependency and serialisation is noise; with no tracer either,
# FastAPI skips its telemetry middleware altogether, which was a tenth of the gateway's CPU.
HTTP_TELEMETRY: TelemetryConfig = {
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "exclude": lambda scope: scope.get("path") in ("/metrics", "/healthz", "/readyz"),
}


def configure(service: str, settings: BusSettings) -> None:
    setup_logging(service)
    metrics.setup_metrics(f"parley-{service}")
    setup_tracing(
        settings.otel_service_name or f"parley-{service}", settings.otel_exporter_otlp_endpoint
    )
    tune_gc()


def migrate_tables(service: str, settings: ProjectionSettings, steps: Sequence[Migration]) -> None:
    """``python -m parley_<service> migrate``: bring the service's tables to this release and
    exit; Kubernetes' migration Job runs it before a rollout, so new replicas start on tables
    already migrated (each still checks at start, under the same advisory lock)."""

    async def run() -> int:
        pool = await create_pool(
            settings.database_url, schema=settings.db_schema, max_size=1, name=service
        )
        try:
            return await migrate(pool, service, steps)
        finally:
            await pool.close()

    before = asyncio.run(run())
    logging.getLogger(__name__).warning(
        "%s tables: schema version %d -> %d", service, before, len(steps)
    )


def serve(app: FastAPI, host: str, port: int, **options: Any) -> None:
    """Run ``app`` with uvicorn, its logs going through ours (``log_config=None``): one
    format, and phone numbers masked in access and error lines too."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log(),
        log_config=None,
        # Streams (the console's live updates) never end by themselves: a stop would wait
        # for them forever. Requests still running after this many seconds are cut.
        timeout_graceful_shutdown=5,
        **options,
    )


def tune_gc() -> None:
    """Fewer cyclic garbage collections for a process that allocates an event's worth of
    objects per record: what is loaded by now (modules, the app) is never scanned again, and
    the youngest generation is collected every 50,000 allocations instead of 700. Replaying
    analytics ran ~20% faster with it; the memory held meanwhile is a few megabytes."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def keep_running(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop forever, restarting it with backoff when it crashes.

    A consumer that cannot reach the broker at start-up, or loses it, comes back by itself;
    the service stays up and reports not-ready meanwhile.
    """
    delay = 0.5
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logging.getLogger(__name__).exception("%s crashed; restarting in %.1fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def allow_browsers(app: FastAPI) -> None:
    """Let the console, served by the conversation service, call this API from the browser.
    Any origin: the APIs take bearer tokens, never cookies, so another site's page gets
    nothing a token it does not have would not give it."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )


def metrics_route(app: FastAPI) -> None:
    """``/metrics``: this process's metrics in the Prometheus text format."""

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")


def health_routes(app: FastAPI, ready: Callable[[], Awaitable[bool]]) -> None:
    """``/healthz`` (alive), ``/readyz`` (can serve) and ``/metrics`` (Prometheus text)."""
    metrics_route(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "Not consuming, or the database does not answer"}},
    )
    async def readyz() -> JSONResponse:
        ok = await ready()
        return JSONResponse(
            {"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503
        )


class ProjectionRuntime:
    """What a projection service runs beside its HTTP API: a pool, a publisher, the consumer
    of its topics, its outbox relay and inbox workers; started in the lifespan, closed at its
    end. Services and rebuilds build their projections the same way."""

    def __init__(self, settings: ProjectionSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.tasks: list[asyncio.Task[None]] = []
        self.consumers: list[EventConsumer] = []
        self._topics_made = False
        self._topics_lock = asyncio.Lock()
        self._pool: Pool | None = None
        self._keyring: Keyring | None = None
        self.kafka = KafkaPublisher(settings)
        self.relay: OutboxRelay | None = None

    @property
    def pool(self) -> Pool:
        assert self._pool is not None, "start() first"
        return self._pool

    @property
    def keyring(self) -> Keyring:
        assert self._keyring is not None, "start() first"
        return self._keyring

    @property
    def publisher(self) -> SealingPublisher[KafkaPublisher]:
        """Publishes with participants' personal fields sealed."""
        return SealingPublisher(self.kafka, self.keyring)

    async def start(self, migrations: Sequence[Migration], pool_size: int = 10) -> Pool:
        self._pool = await create_pool(
            self.settings.database_url,
            schema=self.settings.db_schema,
            max_size=pool_size,
            name=self.service,
        )
        await migrate(self._pool, self.service, migrations)
        self._keyring = Keyring(
            self._pool, schema=self.settings.keyring_schema, cache_s=self.settings.keyring_cache_s
        )
        await self._keyring.ensure()
        self.background("keyring listener", self._keyring.listen)
        await self.kafka.start()
        return self._pool

    def background(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self.tasks.append(asyncio.create_task(keep_running(f"{self.service} {name}", loop)))

    def outbox(self) -> OutboxRelay:
        """The relay of this service's outbox, running in the background."""
        if self.relay is None:
            self.relay = OutboxRelay(self.pool, self.service, self.publisher)
            self.background("outbox relay", self.relay.run)
        return self.relay

    def work(self, inbox: Inbox[T, R], max_in_flight: int) -> LeaseWorker[T, R]:
        """Inbox workers under leases, running in the background."""
        worker = LeaseWorker(self.pool, inbox, name=self.service, max_in_flight=max_in_flight)
        self.background("inbox worker", worker.run)
        return worker

    def consume(
        self,
        topics: Sequence[str],
        projection: Projection,
        first: Sequence[str] = (),
        *,
        read_model: bool = False,
        own: Sequence[str] = (),
    ) -> None:
        """Feed ``projection`` from ``topics``; a ``read_model`` (nothing waits on it to
        answer a participant) trades a little lag for larger batches.

        ``own`` topics carry events this service wrote itself, whose effect on its tables it
        recorded in the same transaction as their outbox rows: reading them back changes
        nothing live (they are processed ids already) and matters only for a rebuild. They are
        read in a second, read-model-paced group (``<group>-own``), so the hot consumer wakes
        only for others' events: one fetch, one transaction and one offset commit less per
        event written.
        """
        group = self.settings.kafka_group_id or f"parley-{self.service}"
        lanes = [(group, [t for t in topics if t not in own], read_model)]
        if own:
            lanes.append((f"{group}-own", [t for t in topics if t in own], True))
        for group_id, lane, paced in lanes:
            consumer = EventConsumer(
                self.settings,
                topics=lane,
                group_id=group_id,
                handler=projection.handle_batch,
                prepare=self.keyring.opener(projection.reads_personal),
                publisher=self.kafka,
                first=[t for t in first if t in lane],
                transient=TRANSIENT_DB_ERRORS,
                read_model=paced,
            )
            self.consumers.append(consumer)
            self.background(f"consumer {group_id}", self._consuming(consumer))

    def _consuming(self, consumer: EventConsumer) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self._make_topics()
            await consumer.run()

        return run

    async def _make_topics(self) -> None:
        """The contract's topics, created once per process however many groups consume."""
        async with self._topics_lock:
            if not self._topics_made:
                await ensure_topics(self.settings)
                self._topics_made = True

    async def ready(self) -> bool:
        """Consuming, and the database answers."""
        if self._pool is None or any(
            not consumer.started.is_set() or consumer.held is not None
            for consumer in self.consumers
        ):
            return False
        return await answers(self._pool)

    async def close(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.kafka.stop()
        if self._pool is not None:
            await self._pool.close()
