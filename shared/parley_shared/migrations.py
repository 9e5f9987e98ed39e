"""Versioned schema migrations: numbered SQL steps per service, applied at start-up.

Each service lists its steps in order (``MIGRATIONS`` in its store); step N takes the schema
to version N. ``<service>_schema_version`` records what was applied. At start-up every
replica runs ``migrate``: under a transaction-scoped advisory lock (replicas starting together
wait for each other, and the second finds nothing to do) the pending steps run in one
transaction, so a failed step leaves the schema as it was. A database already at a version
this code does not know (a newer release migrated it) is refused with a clear message,
rather than run against tables whose meaning changed.

Steps run inside a transaction, so they cannot use ``CREATE INDEX CONCURRENTLY``. A change of
meaning (rather than of shape) is better built beside the live tables by a rebuild
(``DB_SCHEMA``), then switched to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parley_shared.db import Pool, common_schema


@dataclass(frozen=True)
class Migration:
    description: str
    sql: str


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def baseline(service: str, ddl: str) -> Migration:
    """Step 1 of every service: its first tables, with the shared processed/outbox ones.
    Written with ``IF NOT EXISTS``, so databases created before versioning adopt it as is."""
    return Migration("first tables", common_schema(service) + ddl)


async def migrate(pool: Pool, service: str, steps: Sequence[Migration]) -> int:
    """Bring ``service``'s tables to ``len(steps)``; returns the version before."""
    table = f"{service}_schema_version"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))", f"/{service}"
        )
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        current: int = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {table}")
        if current > len(steps):
            raise SchemaTooNew(
                f"the {service} tables are at schema version {current}, but this release "
                f"knows versions up to {len(steps)}: a newer release migrated this database. "
                "Run that release (or a newer one), or rebuild this one's tables beside them "
                "with DB_SCHEMA."
            )
        for version, step in enumerate(steps[current:], start=current + 1):
            await conn.execute(step.sql)
            await conn.execute(
                f"INSERT INTO {table} (version, description) VALUES ($1, $2)",
                version,
                step.description,
            )
        return current
