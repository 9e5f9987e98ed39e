"""Session infrastructure: a real Kafka-protocol broker and a real PostgreSQL.

When KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL point at running servers they are used as they
are; otherwise a Tansu broker and a throwaway PostgreSQL cluster are started for the session
and stopped by PID at its end. Each test gets its own topic prefix, so tests never see each
other's events.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_dev.infra import Postgres, Tansu
from parley_shared.settings import BusSettings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = Tansu(Path(tempfile.mkdtemp(prefix="parley-tansu-")))
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    existing = os.environ.get("DATABASE_URL")
    if existing:
        yield existing
        return
    cluster = Postgres(
        Path(tempfile.mkdtemp(prefix="parley-pg-", dir="/var/tmp")), fast_and_unsafe=True
    )
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[str]:
    """A fresh database per test, dropped afterwards; yields its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def bus_settings(kafka_bootstrap: str, topic_prefix: str) -> BusSettings:
    return BusSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=1000,
        kafka_heartbeat_interval_ms=200,
        # Tests read the operators' API right after seeing a reply go out; production read
        # models may lag a quarter second behind to take bigger batches.
        kafka_read_model_fetch_max_wait_ms=10,
    )


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span the process records, for asserting on traces (installed once per run)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
