"""Each conversation's last activity, for the inbox's order (newest activity first).

Recomputed from the messages, never bumped, so it is the same whatever order events are
applied in: once per projection transaction, for the threads whose messages it added or moved
(however they got there: live, a rebuild, a thread rewritten when messages arrive out of
order). Status callbacks change neither, and cost nothing here.

The first version kept it with statement-level triggers; their transition tables copied every
row of every status update (about a fifth more Postgres CPU per answered message under load),
so step ``WITHOUT_TRIGGERS`` drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley_shared.db import Connection
from parley_shared.events import (
    CallUpdated,
    ConversationChanged,
    EmailReceived,
    Envelope,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    ReplyGenerated,
)
from parley_shared.migrations import Migration

# Events that add messages to a thread or move them between its conversations.
MOVES = (
    MessageReceived,
    ReplyGenerated,
    MessageSent,
    OutboundRequested,
    ConversationChanged,
    CallUpdated,
    EmailReceived,
)


async def recompute(conn: Connection, events: Sequence[Envelope]) -> None:
    keys = sorted({e.conversation_key for e in events if isinstance(e.payload, MOVES)})
    if keys:
        await conn.execute(
            "UPDATE conversation_conversations c SET last_activity_at = ("
            "SELECT max(m.occurred_at) FROM conversation_messages m "
            "WHERE m.conversation_id = c.id) WHERE c.conversation_key = ANY($1::text[])",
            keys,
        )


MIGRATION = Migration(
    "each conversation's last activity, kept by the database, for the inbox's order",
    """
    ALTER TABLE conversation_conversations ADD COLUMN IF NOT EXISTS last_activity_at
        timestamptz;
    UPDATE conversation_conversations c SET last_activity_at = (
        SELECT max(m.occurred_at) FROM conversation_messages m WHERE m.conversation_id = c.id);
    CREATE INDEX IF NOT EXISTS conversation_conversations_activity ON
        conversation_conversations ((coalesce(last_activity_at, opened_at)) DESC, id DESC);
    CREATE OR REPLACE FUNCTION conversation_touched() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE conversation_conversations c SET last_activity_at = (
            SELECT max(m.occurred_at) FROM conversation_messages m
            WHERE m.conversation_id = c.id)
        WHERE c.id IN (SELECT conversation_id FROM touched);
        RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION conversation_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE conversation_conversations c SET last_activity_at = (
            SELECT max(m.occurred_at) FROM conversation_messages m
            WHERE m.conversation_id = c.id)
        WHERE c.id IN (
            SELECT x.id FROM touched n JOIN before o USING (id),
                LATERAL (VALUES (n.conversation_id), (o.conversation_id)) AS x(id)
            WHERE n.conversation_id IS DISTINCT FROM o.conversation_id
               OR n.occurred_at IS DISTINCT FROM o.occurred_at);
        RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS conversation_messages_added ON conversation_messages;
    CREATE TRIGGER conversation_messages_added AFTER INSERT ON conversation_messages
        REFERENCING NEW TABLE AS touched FOR EACH STATEMENT
        EXECUTE FUNCTION conversation_touched();
    DROP TRIGGER IF EXISTS conversation_messages_moved ON conversation_messages;
    -- Every UPDATE (transition tables allow no column list); the function looks only at
    -- rows that moved to another conversation or changed their time.
    CREATE TRIGGER conversation_messages_moved AFTER UPDATE ON conversation_messages
        REFERENCING OLD TABLE AS before NEW TABLE AS touched FOR EACH STATEMENT
        EXECUTE FUNCTION conversation_moved();
    """,
)

WITHOUT_TRIGGERS = Migration(
    "last activity kept by the projection, not by triggers",
    """
    DROP TRIGGER IF EXISTS conversation_messages_added ON conversation_messages;
    DROP TRIGGER IF EXISTS conversation_messages_moved ON conversation_messages;
    DROP FUNCTION IF EXISTS conversation_touched();
    DROP FUNCTION IF EXISTS conversation_moved();
    """,
)
