"""asyncpg helpers shared by services: pools, schema, processed-event tracking, outbox rows.

Each service owns its tables (prefixed with its name). A consumer records the ids of the
events it applied in ``<service>_processed`` in the same transaction as the state change, so a
redelivered event is a no-op; a change that must also be published writes outbox rows in
that transaction, and the relay (``parley_shared.outbox``) publishes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import asyncpg

from parley_shared import metrics
from parley_shared.events import Envelope, encode

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = Pool = Any

# Errors of a database that is restarting, failing over or out of connections: wait and
# retry, never give up on (or dead-letter) the event that met them.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


async def create_pool(
    url: str,
    *,
    schema: str = "public",
    max_size: int = 10,
    name: str = "parley",
    min_size: int = 1,
) -> Pool:
    """A pool whose connections resolve unqualified table names in ``schema`` first; with
    ``min_size`` 0 it connects on first use, so a database still starting is no error yet."""
    if schema != "public":
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        finally:
            await conn.close()

    async def counted(conn: Connection) -> None:
        metrics.count(
            "parley_db_pool_acquisitions", 1, "Connections taken from the pool", service=name
        )

    async def keep_session(conn: Connection) -> None:
        # Nothing we run leaves session state behind (no LISTEN, cursors or session locks
        # on pooled connections), so the default reset would be four statements for nothing.
        return None

    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        setup=counted,
        reset=keep_session,
        # UTC: hour and day buckets (date_trunc) must not depend on the server's zone.
        server_settings={
            "search_path": f'"{schema}"',
            "application_name": f"parley-{name}",
            "timezone": "UTC",
        },
    )
    assert pool is not None
    metrics.gauge(
        "parley_db_pool_in_use",
        lambda: float(pool.get_size() - pool.get_idle_size()),
        "Pooled connections in use",
        service=name,
    )
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
        event bytea NOT NULL
    );
    """


async def first_seen(conn: Connection, service: str, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record ``event_ids`` as processed, in one statement; returns those not seen before."""
    rows = await conn.fetch(
        f"INSERT INTO {service}_processed (event_id) SELECT unnest($1::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


async def first_time(conn: Connection, service: str, event_id: UUID) -> bool:
    """Record one event id as processed; False when it already was (a redelivery)."""
    return bool(await first_seen(conn, service, [event_id]))


async def lock_keys(
    conn: Connection, namespace: str, keys: Iterable[str], shared: Iterable[str] = ()
) -> None:
    """Hold transaction-scoped advisory locks on ``keys`` until the transaction ends, and
    shared ones on ``shared`` (which wait only for a transaction holding one of them
    exclusively, never for each other).

    Whoever locks a key second waits, then reads what the first committed. Locks are taken
    in one order (by hash), so two batches cannot wait on each other through them."""
    exclusive = {key for key in keys if key}
    wanted = sorted(exclusive | {key for key in shared if key})
    if wanted:
        await conn.execute(
            "SELECT CASE WHEN x THEN pg_advisory_xact_lock(h) "
            "ELSE pg_advisory_xact_lock_shared(h) END "
            "FROM (SELECT hashtext($1 || k) AS h, bool_or(x) AS x "
            "FROM unnest($2::text[], $3::bool[]) AS u(k, x) GROUP BY 1) AS l ORDER BY h",
            namespace + "/",
            wanted,
            [key in exclusive for key in wanted],
        )


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as the column arrays that ``unnest($1::t1[], $2::t2[], …)`` takes."""
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


async def enqueue(conn: Connection, service: str, items: Iterable[tuple[str, Envelope]]) -> int:
    """Write outbox rows (topic, event) in one statement; returns how many."""
    rows = [(topic, encode(event)) for topic, event in items]
    if rows:
        await conn.execute(
            f"INSERT INTO {service}_outbox (topic, event) "
            "SELECT * FROM unnest($1::text[], $2::bytea[])",
            [topic for topic, _ in rows],
            [event for _, event in rows],
        )
    return len(rows)


async def answers(pool: Pool, timeout_s: float = 2.0) -> bool:
    """Whether the database answers a trivial query in time (readiness probes)."""
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True
