"""What the sender forgets: an erased participant's messages, and the sends a tenant's retention
reached ("[erased]" in what is kept; those still waiting are never sent)."""

from __future__ import annotations

from uuid import UUID

from parley_shared import erasure, retention
from parley_shared.db import Connection


async def forget(conn: Connection, subjects: list[UUID]) -> None:
    """Erased participants' messages as a rebuild now reads them: "[erased]" in what is
    kept of each, and those still waiting never sent (no one to send to)."""
    await erasure.forget_stored_events(conn, "sender_outbound", "reply_event_id", subjects)
    await conn.execute(
        "UPDATE sender_outbound SET error_message = NULL, "
        "state = CASE WHEN state = 'pending' THEN 'skipped' ELSE state END "
        "WHERE subject = ANY($1::uuid[])",
        subjects,
    )


async def expire(conn: Connection, horizons: retention.Horizons) -> None:
    """Messages answering (or, an operator's, sent at) times before their conversation's
    horizon: "[erased]" in what is kept of each, and never sent if they still waited."""
    keys, befores = retention.columns(horizons)
    reached = retention.reached_rows("sender_outbound", "inbound_at")
    await erasure.forget_events_where(
        conn, "sender_outbound", "reply_event_id", reached, keys, befores
    )
    await conn.execute(
        "UPDATE sender_outbound SET error_message = NULL, "
        f"state = CASE WHEN state = 'pending' THEN 'skipped' ELSE state END WHERE {reached}",
        keys,
        befores,
    )
