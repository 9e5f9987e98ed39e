"""How the AI answers per number, set by operators through the API: every change a versioned
``ai.settings.changed`` event (who, when, which fields), applied here and put on the log, so a
rebuild knows every version. The file and environment values are only the defaults under it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from parley_ai.core import changed_fields
from parley_shared import topics
from parley_shared.db import Connection, Pool, enqueue, first_time, lock_keys
from parley_shared.events import AiOverrides, AiSettingsChanged, Envelope, new_envelope
from parley_shared.migrations import Migration

SERVICE = "ai"

MIGRATION = Migration(
    "AI settings per number, every version kept",
    """
    CREATE TABLE IF NOT EXISTS ai_number_settings (
        number text NOT NULL, version int NOT NULL, settings jsonb NOT NULL,
        changed text[] NOT NULL, actor text NOT NULL, at timestamptz NOT NULL,
        PRIMARY KEY (number, version)
    );
    """,
)


def key_of(number: str) -> str:
    """The log key of a number's settings: its changes stay in order on one partition."""
    return f"settings:{number}"


async def record(conn: Connection, events: Sequence[Envelope[AiSettingsChanged]]) -> None:
    await conn.execute(
        "INSERT INTO ai_number_settings SELECT n, v, s::jsonb, string_to_array(c, ','), a, t "
        "FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[]) AS u(n, v, s, c, a, t) ON CONFLICT DO NOTHING",
        [e.payload.number for e in events],
        [e.payload.version for e in events],
        [e.payload.settings.model_dump_json(exclude_none=True) for e in events],
        [",".join(e.payload.changed) for e in events],
        [e.payload.actor for e in events],
        [e.occurred_at for e in events],
    )


LATEST = """
SELECT DISTINCT ON (number) number, version, settings, changed, actor, at
FROM ai_number_settings ORDER BY number, version DESC
"""


def _overrides(raw: Any) -> AiOverrides:
    return AiOverrides.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


async def current(pool: Pool | Connection) -> dict[str, AiOverrides]:
    """Every number's latest settings (a small table: one row per version per number)."""
    return {row["number"]: _overrides(row["settings"]) for row in await pool.fetch(LATEST)}


async def versions(pool: Pool, number: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT version, settings, changed, actor, at FROM ai_number_settings "
        "WHERE number = $1 ORDER BY version DESC",
        number,
    )
    return [{**dict(row), "settings": _overrides(row["settings"])} for row in rows]


async def change(
    pool: Pool, number: str, settings: AiOverrides, actor: str
) -> Envelope[AiSettingsChanged] | None:
    """A new version of a number's settings, applied and queued for the log in one
    transaction; None when nothing changes."""
    async with pool.acquire() as conn, conn.transaction():
        # The projection takes the same lock: versions of one number are made one at a time.
        await lock_keys(conn, SERVICE, [key_of(number)])
        latest = await conn.fetchrow(
            "SELECT version, settings FROM ai_number_settings WHERE number = $1 "
            "ORDER BY version DESC LIMIT 1",
            number,
        )
        before = _overrides(latest["settings"]) if latest else None
        changed = changed_fields(before, settings)
        if not changed:
            return None
        event = new_envelope(
            AiSettingsChanged(
                number=number,
                version=(latest["version"] if latest else 0) + 1,
                settings=settings,
                changed=changed,
                actor=actor,
            ),
            event_id=uuid4(),
            conversation_key=key_of(number),
            account_sid="",
            occurred_at=datetime.now(UTC),
        )
        await first_time(conn, SERVICE, event.event_id)
        await record(conn, [event])
        await enqueue(conn, SERVICE, [(topics.SETTINGS_CHANGED, event)])
        return event
