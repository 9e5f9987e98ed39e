"""When a person has a conversation, the AI answers nothing in it: handoff changes per thread
(a participant's request for a person, an operator's takeover, a hand-back), kept by time, so a
replay that reads them before or after the messages they concern ends in the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley_shared.db import Connection, columns
from parley_shared.events import Envelope, HandoffChanged

DDL = """
CREATE TABLE IF NOT EXISTS ai_handoffs (
    conversation_key text NOT NULL,
    at timestamptz NOT NULL,
    paused boolean NOT NULL,
    PRIMARY KEY (conversation_key, at)
);
"""

# Whether a person has the conversation of a message written at ``m.occurred_at``: the last
# handoff change before it paused the AI and no close ended that conversation since, or one
# after it did (taken over while the message waited or was being answered).
HANDED_OFF = """(coalesce((SELECT h.paused FROM ai_handoffs h
    WHERE h.conversation_key = m.conversation_key AND h.at <= m.occurred_at
      AND NOT EXISTS (SELECT 1 FROM ai_closes c WHERE c.conversation_key = h.conversation_key
          AND c.closed_at > h.at AND c.closed_at <= m.occurred_at AND NOT c.reopened)
    ORDER BY h.at DESC LIMIT 1), false)
  OR EXISTS (SELECT 1 FROM ai_handoffs h WHERE h.conversation_key = m.conversation_key
      AND h.at > m.occurred_at AND h.paused))"""


async def record_handoffs(conn: Connection, rows: Sequence[tuple[str, Any, bool]]) -> None:
    """(conversation key, when, whether the AI pauses from then on)."""
    if rows:
        await conn.execute(
            "INSERT INTO ai_handoffs SELECT * FROM unnest($1::text[], $2::timestamptz[], "
            "$3::boolean[]) ON CONFLICT DO NOTHING",
            *columns(rows, 3),
        )


async def record_handoff_changes(
    conn: Connection, events: Sequence[Envelope[HandoffChanged]]
) -> None:
    await record_handoffs(
        conn,
        [(e.conversation_key, e.occurred_at, e.payload.action == "taken_over") for e in events],
    )
    # What a takeover stops: messages after it, and any being answered at that moment (a
    # worker's outcome no longer finds its lease). A replay reading this before the messages
    # it stops, or after, ends the same way; a reply on the log still marks its message done.
    # And a hand-back read after a message that followed it (another topic) gives that
    # message back to the AI.
    keys = list({e.conversation_key for e in events})
    await conn.execute(
        f"UPDATE ai_inbox m SET state = 'skipped', reason = 'handed_off', lease_token = NULL "
        f"WHERE m.conversation_key = ANY($1::text[]) AND m.state = 'pending' AND {HANDED_OFF}",
        keys,
    )
    await conn.execute(
        f"UPDATE ai_inbox m SET state = 'pending', reason = NULL, due_at = now() "
        f"WHERE m.conversation_key = ANY($1::text[]) AND m.state = 'skipped' "
        f"AND m.reason = 'handed_off' AND NOT {HANDED_OFF}",
        keys,
    )
