"""What the conversation service forgets: an erased participant's messages and thread details,
and what a tenant's retention reached, as a rebuild reads them ("[erased]")."""

from __future__ import annotations

from uuid import UUID

from parley_shared import erasure, retention
from parley_shared.db import Connection

# What an entry keeps of a participant's fields once they are forgotten ($2: "[erased]"), as a
# rebuild reads their events then: a call's entry holds none of them, so it is left as it is.
FORGOTTEN = (
    "body = CASE WHEN kind = 'call' THEN body ELSE $2 END, media = '[]', location = NULL, "
    "email = CASE WHEN email IS NULL THEN NULL "
    "ELSE email || jsonb_build_object('subject', $2::text, 'sender_name', NULL) END"
)


async def forget(conn: Connection, subjects: list[UUID]) -> None:
    """What erased participants' events put here, as a rebuild now reads them: "[erased]"."""
    await conn.execute(
        f"UPDATE conversation_messages SET {FORGOTTEN} WHERE subject = ANY($1::uuid[])",
        subjects,
        erasure.ERASED,
    )
    await conn.execute(
        "UPDATE conversation_threads SET participant = $2 WHERE subject = ANY($1::uuid[])",
        subjects,
        erasure.ERASED,
    )
    await conn.execute(
        "UPDATE conversation_threads SET profile_name = NULL, profile_subject = NULL "
        "WHERE profile_subject = ANY($1::uuid[])",
        subjects,
    )


async def expire(conn: Connection, horizons: retention.Horizons) -> None:
    """Messages from before their conversation's horizon as an erasure leaves them; a thread
    with none since, without its number and profile name (a newer message brings them back,
    as it does after an erasure)."""
    keys, befores = retention.columns(horizons)
    await conn.execute(
        f"UPDATE conversation_messages m SET {FORGOTTEN.replace('$2', '$3')} "
        "FROM unnest($1::text[], $2::timestamptz[]) AS h(key, before) "
        "WHERE m.conversation_key = h.key AND m.anchor_at < h.before AND kind <> 'call' "
        "AND (m.body <> $3 OR m.media <> '[]' OR m.location IS NOT NULL "
        "OR m.email ->> 'subject' <> $3)",
        keys,
        befores,
        erasure.ERASED,
    )
    await conn.execute(
        "UPDATE conversation_threads t SET participant = $3, profile_name = NULL, "
        "profile_subject = NULL FROM unnest($1::text[], $2::timestamptz[]) AS h(key, before) "
        "WHERE t.conversation_key = h.key AND t.participant <> $3 AND NOT EXISTS ("
        "SELECT 1 FROM conversation_messages m WHERE m.conversation_key = h.key "
        "AND m.anchor_at >= h.before)",
        keys,
        befores,
        erasure.ERASED,
    )
