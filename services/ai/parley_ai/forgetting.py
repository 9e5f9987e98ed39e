"""What the ai service forgets: an erased participant's messages (never answered, no text of
theirs in any model's context), and the turns a tenant's retention reached."""

from __future__ import annotations

from uuid import UUID

from parley_ai.store import HUMAN
from parley_shared import erasure, retention
from parley_shared.db import Connection
from parley_shared.sealing import ERASED


async def forget(conn: Connection, subjects: list[UUID]) -> None:
    """Erased participants' messages as a rebuild now reads them: never answered (unless
    they were, or were a keyword or a call for a person), no text of theirs in any history."""
    await erasure.forget_stored_events(conn, "ai_inbox", "event_id", subjects)
    await conn.execute(
        "UPDATE ai_inbox SET state = 'skipped', reason = 'erased', lease_token = NULL "
        "WHERE subject = ANY($1::uuid[]) AND (state = 'pending' OR (state = 'skipped' "
        "AND reason NOT IN ('keyword', $2)))",
        subjects,
        HUMAN,
    )
    await conn.execute(
        "DELETE FROM ai_turns WHERE subject = ANY($1::uuid[]) AND role = 'user'", subjects
    )
    await conn.execute(
        "UPDATE ai_turns SET content = $2 WHERE subject = ANY($1::uuid[])", subjects, ERASED
    )


async def expire(conn: Connection, horizons: retention.Horizons) -> None:
    """Messages from before their conversation's horizon: out of the model's context, their
    text gone from the inbox, and never answered if they still waited (days late)."""
    keys, befores = retention.columns(horizons)
    await erasure.forget_events_where(
        conn,
        "ai_inbox",
        "event_id",
        retention.reached_rows("ai_inbox", "occurred_at"),
        keys,
        befores,
    )
    await conn.execute(
        "UPDATE ai_inbox SET state = 'skipped', reason = 'expired', lease_token = NULL "
        f"WHERE state = 'pending' AND {retention.reached_rows('ai_inbox', 'occurred_at')}",
        keys,
        befores,
    )
    await conn.execute(
        f"DELETE FROM ai_turns WHERE {retention.reached_rows('ai_turns', 'anchor_at')}",
        keys,
        befores,
    )
