"""The analytics service's tables: the first schema, and every step since (append, never edit
a released one)."""

from __future__ import annotations

from parley_analytics import contacts, conversation_hours, participants
from parley_shared import erasure, retention, tenancy
from parley_shared.migrations import Migration, baseline

SERVICE = "analytics"

SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics_facts (
    id uuid PRIMARY KEY,
    conversation_key text NOT NULL,
    channel text NOT NULL,
    our_address text NOT NULL,
    participant text NOT NULL,
    direction text NOT NULL,
    occurred_at timestamptz NOT NULL,
    body text NOT NULL DEFAULT '',
    inbound_at timestamptz,
    sent_at timestamptz,
    delivered_at timestamptz,
    message_sid text UNIQUE,
    status text,
    error_code int,
    source text,
    model text,
    prompt_tokens int NOT NULL DEFAULT 0,
    completion_tokens int NOT NULL DEFAULT 0,
    ai_latency_ms int,
    segments int,
    counted_reply boolean NOT NULL DEFAULT false,
    counted_delivery boolean NOT NULL DEFAULT false,
    funnel_status text,
    funnel_error int
);
-- Room in each page, so settling a fact (funnel, delivery time: no indexed column) is a
-- HOT update that touches no index.
ALTER TABLE analytics_facts SET (fillfactor = 70);
CREATE INDEX IF NOT EXISTS analytics_facts_time ON analytics_facts (occurred_at, id);
CREATE INDEX IF NOT EXISTS analytics_facts_inbound ON analytics_facts (conversation_key,
    occurred_at) WHERE direction = 'inbound';
CREATE TABLE IF NOT EXISTS analytics_hourly (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    messages_in bigint NOT NULL DEFAULT 0, messages_out bigint NOT NULL DEFAULT 0,
    opt_outs bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, channel, our_address)
);
CREATE TABLE IF NOT EXISTS analytics_active (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    participant text NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, participant)
);
CREATE TABLE IF NOT EXISTS analytics_latency (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    metric text NOT NULL, bin int NOT NULL, count bigint NOT NULL,
    -- whole milliseconds: an integer sum is the same whatever order events are added in
    sum_ms bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, metric, bin)
);
CREATE TABLE IF NOT EXISTS analytics_delivery (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    status text NOT NULL, error_code int NOT NULL, count bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, status, error_code)
);
CREATE TABLE IF NOT EXISTS analytics_ai (
    bucket timestamptz NOT NULL, channel text NOT NULL, our_address text NOT NULL,
    model text NOT NULL, source text NOT NULL, replies bigint NOT NULL,
    prompt_tokens bigint NOT NULL, completion_tokens bigint NOT NULL,
    PRIMARY KEY (bucket, channel, our_address, model, source)
);
CREATE TABLE IF NOT EXISTS analytics_statuses (
    message_sid text NOT NULL, status text NOT NULL, at timestamptz NOT NULL,
    error_code int, PRIMARY KEY (message_sid, status)
);
CREATE TABLE IF NOT EXISTS analytics_conversations (
    id uuid PRIMARY KEY, conversation_key text NOT NULL, channel text NOT NULL,
    our_address text NOT NULL, opened_at timestamptz NOT NULL, closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS analytics_conversations_key
    ON analytics_conversations (conversation_key, opened_at);
CREATE INDEX IF NOT EXISTS analytics_conversations_opened ON analytics_conversations (opened_at);
"""

# Step N takes the tables to version N; append, never edit a released step.
MIGRATIONS = (
    baseline(SERVICE, SCHEMA),
    Migration(
        "handoffs: takeovers, requests for a person, people's messages",
        """
        CREATE TABLE IF NOT EXISTS analytics_handoffs (
            conversation_id uuid NOT NULL, at timestamptz NOT NULL, action text NOT NULL,
            conversation_key text NOT NULL, channel text NOT NULL, our_address text NOT NULL,
            PRIMARY KEY (conversation_id, at)
        );
        CREATE INDEX IF NOT EXISTS analytics_handoffs_at ON analytics_handoffs (at);
        CREATE TABLE IF NOT EXISTS analytics_requests (
            id uuid PRIMARY KEY, conversation_key text NOT NULL, at timestamptz NOT NULL,
            channel text NOT NULL, our_address text NOT NULL
        );
        CREATE INDEX IF NOT EXISTS analytics_requests_key
            ON analytics_requests (conversation_key, at);
        ALTER TABLE analytics_facts ADD COLUMN IF NOT EXISTS by_person boolean NOT NULL
            DEFAULT false;
        CREATE INDEX IF NOT EXISTS analytics_facts_by_person ON analytics_facts
            (conversation_key, sent_at) WHERE by_person;
        """,
    ),
    participants.MIGRATION,
    Migration(
        "daily latency histograms; conversations counted from their index alone",
        """
        CREATE TABLE IF NOT EXISTS analytics_latency_daily
            (LIKE analytics_latency INCLUDING ALL);
        INSERT INTO analytics_latency_daily
            SELECT date_trunc('day', bucket), channel, our_address, metric, bin, sum(count),
                   sum(sum_ms)
            FROM analytics_latency GROUP BY 1, 2, 3, 4, 5 ON CONFLICT DO NOTHING;
        CREATE INDEX IF NOT EXISTS analytics_conversations_opened_covering
            ON analytics_conversations (opened_at) INCLUDE (closed_at, channel, our_address);
        DROP INDEX IF EXISTS analytics_conversations_opened;
        """,
    ),
    tenancy.migration(SERVICE),
    conversation_hours.MIGRATION,
    erasure.migration(
        SERVICE,
        """
        ALTER TABLE analytics_facts ADD COLUMN IF NOT EXISTS subject uuid;
        CREATE INDEX IF NOT EXISTS analytics_facts_subject ON analytics_facts (subject)
            WHERE subject IS NOT NULL;
        """,
    ),
    retention.migration(SERVICE),
    contacts.MIGRATION,
)
