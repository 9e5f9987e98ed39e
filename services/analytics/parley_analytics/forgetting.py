"""What analytics forgets: an erased participant's messages, and what a tenant's retention
reached ("[erased]" in the facts); the figures stay."""

from __future__ import annotations

from uuid import UUID

from parley_shared import retention
from parley_shared.db import Connection
from parley_shared.sealing import ERASED


async def forget(conn: Connection, subjects: list[UUID]) -> None:
    """Erased participants' messages as a rebuild now reads them; figures stay (they count
    subjects, not numbers)."""
    await conn.execute(
        "UPDATE analytics_facts SET participant = $2, body = $2 WHERE subject = ANY($1::uuid[])",
        subjects,
        ERASED,
    )


async def expire(conn: Connection, horizons: retention.Horizons) -> None:
    """Messages from before their conversation's horizon (a reply placed at its inbound's
    arrival) as an erasure leaves them; the figures stay."""
    keys, befores = retention.columns(horizons)
    await conn.execute(
        "UPDATE analytics_facts f SET participant = $3, body = $3 "
        "FROM unnest($1::text[], $2::timestamptz[]) AS h(key, before) "
        "WHERE f.conversation_key = h.key AND coalesce(f.inbound_at, f.occurred_at) < h.before "
        "AND (f.participant <> $3 OR f.body <> $3)",
        keys,
        befores,
        ERASED,
    )
