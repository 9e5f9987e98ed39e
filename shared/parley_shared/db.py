"""asyncpg helpers shared by services: pools, schema, processed-event tracking, outbox.

Each service owns its tables (prefixed with its name). A consumer records every event id it
processed in ``<service>_processed`` in the same transaction as its state change, so a
redelivered event is a no-op; a change that must also be published writes an outbox row in
that transaction, and a relay publishes rows in order and marks them done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import asyncpg

from parley_shared.bus import BrokerUnavailable, Publisher
from parley_shared.events import Envelope, decode, encode

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = Pool = Any


async def create_pool(url: str, *, schema: str = "public", max_size: int = 10) -> Pool:
    """A pool whose connections resolve unqualified table names in ``schema`` first."""
    if schema != "public":
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=max_size, server_settings={"search_path": f'"{schema}"'}
    )
    assert pool is not None
    return pool


def common_schema(service: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {service}_processed (
        event_id uuid PRIMARY KEY,
        processed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS {service}_outbox (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        event bytea NOT NULL,
        published_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS {service}_outbox_pending
        ON {service}_outbox (id) WHERE published_at IS NULL;
    """


async def apply_schema(pool: Pool, service: str, ddl: str) -> None:
    # An advisory lock keeps replicas starting together from racing on CREATE TABLE.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", service)
        await conn.execute(common_schema(service) + ddl)


async def first_time(conn: Connection, service: str, event_id: UUID) -> bool:
    """Record ``event_id`` as processed; False when it already was (a redelivery)."""
    row = await conn.fetchval(
        f"INSERT INTO {service}_processed (event_id) VALUES ($1) "
        "ON CONFLICT DO NOTHING RETURNING true",
        event_id,
    )
    return bool(row)


async def enqueue(conn: Connection, service: str, topic: str, event: Envelope) -> None:
    await conn.execute(
        f"INSERT INTO {service}_outbox (topic, event) VALUES ($1, $2)", topic, encode(event)
    )


class OutboxRelay:
    """Publishes a service's outbox rows in id order; wakes on ``notify()`` or every second."""

    def __init__(self, pool: Pool, service: str, publisher: Publisher) -> None:
        self._pool = pool
        self._service = service
        self._publisher = publisher
        self._wake = asyncio.Event()

    def notify(self) -> None:
        self._wake.set()

    async def publish_pending(self, limit: int = 200) -> int:
        rows: list[Any] = await self._pool.fetch(
            f"SELECT id, topic, event FROM {self._service}_outbox "
            "WHERE published_at IS NULL ORDER BY id LIMIT $1",
            limit,
        )
        for row in rows:
            # Publish first, then mark: a crash in between republishes the same event id,
            # which every consumer drops.
            await self._publisher.publish(row["topic"], decode(row["event"]))
            await self._pool.execute(
                f"UPDATE {self._service}_outbox SET published_at = now() WHERE id = $1", row["id"]
            )
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                while await self.publish_pending():
                    pass
            except (BrokerUnavailable, OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox relay of %s paused: %r", self._service, exc)
                await asyncio.sleep(1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
