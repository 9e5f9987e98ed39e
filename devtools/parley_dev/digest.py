"""A canonical digest of a service's tables, to prove a rebuild reproduces the live state.

Rows are rendered as text and sorted, so physical order does not matter. Left out: outbox
tables (transport, not state), pacing tables (send times: scheduling, not state) and columns
that record when this copy did its work rather than what the log says (processing and
migration times, serial numbers, retry leases).
"""

from __future__ import annotations

from parley_shared.db import Pool

VOLATILE_COLUMNS = frozenset(
    {
        "processed_at",
        "recorded_at",
        "applied_at",
        "seq",
        "due_at",
        "lease_token",
        "sending_since",
        "first_attempt_at",
    }
)


async def _row_text(pool: Pool, table: str) -> str:
    """SQL that renders a row of ``table`` as text, volatile columns left out."""
    columns = [
        row["column_name"]
        for row in await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE "
            "table_schema = current_schema() AND table_name = $1 ORDER BY column_name",
            table,
        )
        if row["column_name"] not in VOLATILE_COLUMNS
    ]
    return "ROW(" + ", ".join(f'"{c}"' for c in columns) + ")::text"


async def digest(pool: Pool, service: str) -> dict[str, tuple[int, str]]:
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename LIKE $1 AND tablename NOT LIKE '%\\_outbox' "
        "AND tablename NOT LIKE '%\\_pacing' ORDER BY tablename",
        f"{service}\\_%",
    )
    result: dict[str, tuple[int, str]] = {}
    for table in (row["tablename"] for row in tables):
        row_sql = await _row_text(pool, table)
        summary = await pool.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) AS h "
            f'FROM (SELECT {row_sql} AS r FROM "{table}") rows'
        )
        assert summary is not None
        result[table] = (int(summary["n"]), str(summary["h"]))
    return result


async def rows(pool: Pool, table: str) -> list[str]:
    """Every row of a table as sorted text, for a readable diff when digests differ."""
    row_sql = await _row_text(pool, table)
    return [r["r"] for r in await pool.fetch(f'SELECT {row_sql} AS r FROM "{table}" ORDER BY 1')]
