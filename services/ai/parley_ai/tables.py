"""The ai service's tables: the first schema, and every step since (append, never edit a
released one)."""

from __future__ import annotations

from parley_ai import handoffs, number_settings
from parley_shared import erasure, retention, tenancy
from parley_shared.conversations import closes_ddl
from parley_shared.migrations import Migration, baseline

SERVICE = "ai"

SCHEMA = """
CREATE TABLE IF NOT EXISTS ai_inbox (
    event_id uuid PRIMARY KEY,
    seq bigserial UNIQUE,
    conversation_key text NOT NULL,
    occurred_at timestamptz NOT NULL,
    event bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'done', 'skipped')),
    reason text,
    reply_event_id uuid,
    due_at timestamptz NOT NULL DEFAULT now(),
    lease_token uuid,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ai_inbox_open ON ai_inbox (conversation_key, seq)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS ai_inbox_queue ON ai_inbox (seq) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS ai_turns (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    anchor_at timestamptz NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_turns_by_key ON ai_turns (conversation_key, anchor_at);
CREATE TABLE IF NOT EXISTS ai_keywords (
    conversation_key text NOT NULL,
    at timestamptz NOT NULL,
    opted_out boolean NOT NULL,
    PRIMARY KEY (conversation_key, at)
);
"""

# Step N takes the tables to version N; append, never edit a released step.
MIGRATIONS = (
    baseline(SERVICE, SCHEMA + closes_ddl(SERVICE)),
    Migration(
        "handoffs (the AI pauses while a person has it), rate limits (messages by time)",
        handoffs.DDL + "CREATE INDEX IF NOT EXISTS ai_inbox_by_key_time ON ai_inbox "
        "(conversation_key, occurred_at);",
    ),
    number_settings.MIGRATION,
    tenancy.migration(SERVICE),
    erasure.migration(
        SERVICE,
        """
        ALTER TABLE ai_inbox ADD COLUMN IF NOT EXISTS subject uuid;
        ALTER TABLE ai_turns ADD COLUMN IF NOT EXISTS subject uuid;
        CREATE INDEX IF NOT EXISTS ai_inbox_subject ON ai_inbox (subject)
            WHERE subject IS NOT NULL;
        CREATE INDEX IF NOT EXISTS ai_turns_subject ON ai_turns (subject)
            WHERE subject IS NOT NULL;
        """,
    ),
    retention.migration(SERVICE),
)
