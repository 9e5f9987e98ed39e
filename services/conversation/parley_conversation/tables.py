"""The conversation service's tables: the first schema, and every step since (append, never
edit a released one)."""

from __future__ import annotations

from parley_conversation import activity
from parley_shared import erasure, retention, tenancy
from parley_shared.migrations import Migration, baseline

SERVICE = "conversation"

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_threads (
    conversation_key text PRIMARY KEY,
    account_sid text NOT NULL,
    channel text NOT NULL,
    our_address text NOT NULL,
    participant text NOT NULL,
    profile_name text,
    opted_out boolean NOT NULL DEFAULT false,
    opt_changed_at timestamptz
);
CREATE TABLE IF NOT EXISTS conversation_conversations (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL REFERENCES conversation_threads,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS conversation_conversations_key
    ON conversation_conversations (conversation_key, opened_at);
CREATE INDEX IF NOT EXISTS conversation_conversations_opened
    ON conversation_conversations (opened_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS conversation_messages (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    conversation_id uuid NOT NULL,
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    anchor_at timestamptz NOT NULL,
    occurred_at timestamptz NOT NULL,
    body text NOT NULL,
    media jsonb NOT NULL DEFAULT '[]',
    message_sid text UNIQUE,
    initial_status text,
    status text,
    error_code int,
    ai jsonb
);
-- Room in each page, so a status change (no indexed column) is a HOT update.
ALTER TABLE conversation_messages SET (fillfactor = 70);
CREATE INDEX IF NOT EXISTS conversation_messages_by_conversation
    ON conversation_messages (conversation_id, anchor_at, direction, id);
CREATE INDEX IF NOT EXISTS conversation_messages_by_key
    ON conversation_messages (conversation_key, anchor_at);
CREATE TABLE IF NOT EXISTS conversation_statuses (
    message_sid text NOT NULL,
    status text NOT NULL,
    at timestamptz NOT NULL,
    error_code int,
    PRIMARY KEY (message_sid, status)
);
"""

# Step N takes the tables to version N; append, never edit a released step.
MIGRATIONS = (
    baseline(SERVICE, SCHEMA),
    Migration(
        "operators' messages and handoffs (see agents.py), templates, locations",
        """
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS agent text;
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS content_sid text;
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS location jsonb;
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS asks_human boolean
            NOT NULL DEFAULT false;
        CREATE TABLE IF NOT EXISTS conversation_handoffs (
            conversation_id uuid NOT NULL,
            at timestamptz NOT NULL,
            action text NOT NULL CHECK (action IN ('taken_over', 'handed_back')),
            agent text NOT NULL,
            PRIMARY KEY (conversation_id, at)
        );
        """,
    ),
    tenancy.migration(SERVICE),
    activity.MIGRATION,
    activity.WITHOUT_TRIGGERS,
    erasure.migration(
        SERVICE,
        """
        ALTER TABLE conversation_threads ADD COLUMN IF NOT EXISTS subject uuid;
        ALTER TABLE conversation_threads ADD COLUMN IF NOT EXISTS profile_subject uuid;
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS subject uuid;
        CREATE INDEX IF NOT EXISTS conversation_threads_subject
            ON conversation_threads (subject) WHERE subject IS NOT NULL;
        CREATE INDEX IF NOT EXISTS conversation_messages_subject
            ON conversation_messages (subject) WHERE subject IS NOT NULL;
        """,
    ),
    retention.migration(SERVICE),
    Migration(
        "the provider a thread's messages come and go through (rebuild to backfill)",
        "ALTER TABLE conversation_threads ADD COLUMN IF NOT EXISTS provider text;",
    ),
    Migration(
        "calls and emails in the history (contacts.py): what an entry is, and its details",
        """
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS kind text NOT NULL
            DEFAULT 'message';
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS call jsonb;
        ALTER TABLE conversation_messages ADD COLUMN IF NOT EXISTS email jsonb;
        """,
    ),
)
