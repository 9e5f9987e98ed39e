"""Versioned migrations against a real PostgreSQL: applied once, in order, under a lock;
a failed step changes nothing; a schema newer than the code is refused."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest

from parley_ai import tables as ai_tables
from parley_analytics import tables as analytics_tables
from parley_conversation import tables as conversation_tables
from parley_sender import tables as sender_tables
from parley_shared.db import create_pool
from parley_shared.migrations import Migration, SchemaTooNew, baseline, migrate
from parley_shared.runtime import ProjectionRuntime
from parley_shared.settings import ProjectionSettings

FIRST = baseline("svc", "CREATE TABLE IF NOT EXISTS svc_things (id int PRIMARY KEY);")
SECOND = Migration("things have names", "ALTER TABLE svc_things ADD COLUMN name text;")


async def versions(database: str, service: str = "svc") -> list[int]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(f"SELECT version FROM {service}_schema_version ORDER BY version")
    finally:
        await conn.close()
    return [row["version"] for row in rows]


async def test_steps_apply_once_and_in_order(database: str) -> None:
    pool = await create_pool(database)
    try:
        assert await migrate(pool, "svc", [FIRST]) == 0
        assert await migrate(pool, "svc", [FIRST]) == 1
        assert await migrate(pool, "svc", [FIRST, SECOND]) == 1
        await pool.execute("INSERT INTO svc_things (id, name) VALUES (1, 'one')")
        assert await migrate(pool, "svc", [FIRST, SECOND]) == 2
    finally:
        await pool.close()
    assert await versions(database) == [1, 2]


async def test_a_failing_step_leaves_the_schema_as_it_was(database: str) -> None:
    pool = await create_pool(database)
    broken = Migration("broken", "CREATE TABLE svc_more (id int); SELECT no_such_column;")
    try:
        await migrate(pool, "svc", [FIRST])
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(pool, "svc", [FIRST, SECOND, broken])
        # Neither the second step nor the half of the third ran.
        assert await pool.fetchval("SELECT to_regclass('svc_more')") is None
        columns = await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'svc_things'"
        )
        assert [row["column_name"] for row in columns] == ["id"]
    finally:
        await pool.close()
    assert await versions(database) == [1]


async def test_replicas_starting_together_migrate_once(database: str) -> None:
    pools = [await create_pool(database) for _ in range(4)]
    try:
        before = await asyncio.gather(*(migrate(p, "svc", [FIRST, SECOND]) for p in pools))
    finally:
        for pool in pools:
            await pool.close()
    assert sorted(before) == [0, 2, 2, 2]
    assert await versions(database) == [1, 2]


async def test_tables_made_before_versioning_adopt_the_baseline(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        # What releases without a version table left behind: the same tables, no record.
        await conn.execute(FIRST.sql)
        await conn.execute("INSERT INTO svc_things VALUES (7)")
    finally:
        await conn.close()
    pool = await create_pool(database)
    try:
        assert await migrate(pool, "svc", [FIRST, SECOND]) == 0
        assert await pool.fetchval("SELECT id FROM svc_things") == 7
    finally:
        await pool.close()


async def test_a_service_refuses_a_schema_newer_than_it_knows(
    database: str, kafka_bootstrap: str
) -> None:
    pool = await create_pool(database)
    try:
        later = Migration("a later release's step", "CREATE TABLE sender_later (id int);")
        await migrate(pool, sender_tables.SERVICE, [*sender_tables.MIGRATIONS, later])
    finally:
        await pool.close()
    runtime = ProjectionRuntime(
        ProjectionSettings(database_url=database, kafka_bootstrap_servers=kafka_bootstrap),
        sender_tables.SERVICE,
    )
    try:
        with pytest.raises(
            SchemaTooNew,
            match=f"sender tables are at schema version {len(sender_tables.MIGRATIONS) + 1}",
        ):
            await runtime.start(sender_tables.MIGRATIONS)
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    "tables",
    [ai_tables, analytics_tables, conversation_tables, sender_tables],
    ids=lambda s: s.SERVICE,
)
async def test_every_service_migrates_a_fresh_database(database: str, tables: object) -> None:
    service: str = tables.SERVICE
    steps: list[Migration] = list(tables.MIGRATIONS)
    pool = await create_pool(database)
    try:
        await migrate(pool, service, steps)
        tables = await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", f"{service}\\_%"
        )
    finally:
        await pool.close()
    names = {row["tablename"] for row in tables}
    assert {f"{service}_processed", f"{service}_outbox", f"{service}_schema_version"} <= names
    assert await versions(database, service) == list(range(1, len(steps) + 1))


async def test_the_migration_command_migrates_and_exits(database: str) -> None:
    """What Kubernetes' migration Job runs (``python -m parley_<service> migrate``)."""
    for store in (ai_tables, analytics_tables, conversation_tables, sender_tables):
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never used: it must not need a broker
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "OPENAI_API_KEY": "sk-migrate",
            "API_TOKEN": "migrate-token",
            "PUBLIC_BASE_URL": "https://parley.example.com",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"parley_{store.SERVICE}", "migrate", env=env
        )
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert await versions(database, store.SERVICE) == list(range(1, len(store.MIGRATIONS) + 1))
