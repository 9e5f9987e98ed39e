"""The sender's tables: the first schema, and every step since (append, never edit a released
one)."""

from __future__ import annotations

from parley_sender import pacing
from parley_shared import erasure, retention, tenancy
from parley_shared.conversations import closes_ddl
from parley_shared.migrations import Migration, baseline

SERVICE = "sender"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sender_outbound (
    reply_event_id uuid PRIMARY KEY,
    in_reply_to uuid UNIQUE,
    seq bigserial UNIQUE,
    conversation_key text NOT NULL,
    event bytea,
    state text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts int NOT NULL DEFAULT 0,
    due_at timestamptz NOT NULL DEFAULT now(),
    lease_token uuid,
    sending_since timestamptz,
    message_sid text,
    error_code int,
    error_message text
);
CREATE INDEX IF NOT EXISTS sender_outbound_open ON sender_outbound (conversation_key, seq)
    WHERE state IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS sender_outbound_queue ON sender_outbound (seq)
    WHERE state IN ('pending', 'sending');
CREATE TABLE IF NOT EXISTS sender_optouts (
    conversation_key text PRIMARY KEY,
    opted_out boolean NOT NULL,
    changed_at timestamptz NOT NULL
);
"""

# Step N takes the tables to version N; append, never edit a released step.
MIGRATIONS = (
    baseline(SERVICE, SCHEMA),
    Migration(
        "first attempt time, for the retry window",
        "ALTER TABLE sender_outbound ADD COLUMN IF NOT EXISTS first_attempt_at timestamptz;",
    ),
    Migration(
        "closes, so that a reply is not sent into a conversation closed meanwhile",
        "ALTER TABLE sender_outbound ADD COLUMN IF NOT EXISTS inbound_at timestamptz;"
        + closes_ddl(SERVICE),
    ),
    Migration(
        "each WhatsApp thread's last inbound time (the 24-hour window); pacing per number",
        "CREATE TABLE IF NOT EXISTS sender_windows (conversation_key text PRIMARY KEY, "
        "last_inbound_at timestamptz NOT NULL);" + pacing.DDL,
    ),
    tenancy.migration(SERVICE),
    erasure.migration(
        SERVICE,
        """
        ALTER TABLE sender_outbound ADD COLUMN IF NOT EXISTS subject uuid;
        CREATE INDEX IF NOT EXISTS sender_outbound_subject ON sender_outbound (subject)
            WHERE subject IS NOT NULL;
        """,
    ),
    retention.migration(SERVICE),
)
