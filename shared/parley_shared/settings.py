"""Settings every service shares, read from the environment when a service starts."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_shared.keywords import human_words


class BusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    kafka_topic_prefix: str = ""
    kafka_topic_partitions: int = Field(6, ge=1, le=1000)
    # -1 keeps history forever: the log is the source of truth every projection is rebuilt from.
    kafka_retention_ms: int = Field(-1, ge=-1)
    kafka_replication_factor: int = Field(1, ge=1)
    # A group (re)join waits on the session timeout; tests shorten it to keep restarts quick.
    kafka_session_timeout_ms: int = Field(10_000, ge=500)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    # How long the broker may hold a fetch when there is nothing new. Apache Kafka answers as
    # soon as data arrives; Tansu 0.6 does only for the first event after a quiet spell: a
    # fetch sent right after one that returned data waits out its time (measured: an event
    # 10 ms behind another was read up to 50 ms later at 100 ms). At 20 messages/s, 100 ms
    # gave a pipeline overhead of p50 79 / p99 125 ms, 50 ms gave 38 / 56, 20 ms 30 / 49; two
    # idle consumers cost the broker 7%, 10% and 23% of a core.
    kafka_fetch_max_wait_ms: int = Field(50, ge=1, le=10_000)
    # Read models (conversation, analytics) are off the reply path: they ask the broker to
    # hold a fetch until it has this much (or this long passed), so under load each of their
    # transactions takes a few hundred events instead of a few, for at most this much lag.
    # Each held fetch costs the broker as much as one that returns (measured on Tansu: at
    # 250 ms the broker spent 1.5 ms of CPU per answered message, at 1 s 0.8), and that CPU
    # is taken from the reply path on a small box; a second of lag in a view is the price.
    kafka_read_model_fetch_min_bytes: int = Field(1 << 20, ge=1)
    kafka_read_model_fetch_max_wait_ms: int = Field(1_000, ge=1, le=10_000)
    # How long the producer gathers events into one produce request.
    kafka_linger_ms: int = Field(0, ge=0, le=1_000)
    # At most one offset commit per consumer this often, in the background: a commit per
    # poll cost the broker a request per poll and put a round trip between applies. After a
    # crash, up to this much is read again (and dropped by event id).
    kafka_commit_interval_ms: int = Field(200, ge=0, le=60_000)
    kafka_max_poll_records: int = Field(1000, ge=1, le=100_000)
    otel_service_name: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    # Participants' keys (keyring.py): one table for every service, wherever DB_SCHEMA puts
    # a service's own tables; a deleted key stops opening events within KEYRING_CACHE_S.
    keyring_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    keyring_cache_s: float = Field(60.0, ge=0, le=3600)


def describe_errors(exc: Exception) -> str:
    """A one-line-per-problem message for a settings ValidationError, naming env vars."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for error in errors():
        name = ".".join(str(part) for part in error.get("loc", ())).upper() or "?"
        lines.append(f"  {name}: {error.get('msg')}")
    return "invalid configuration:\n" + "\n".join(lines)


class KeywordSettings(BaseSettings):
    """What projections decide by, so that a rebuild (which reads them from the environment
    too) decides the same."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # More one-word messages that ask for a person, comma-separated; HUMAN, AGENT, OPERATOR,
    # PERSON and REPRESENTATIVE always do.
    handoff_keywords: str = Field("", max_length=1000)

    @property
    def human_words(self) -> frozenset[str]:
        return human_words(self.handoff_keywords)


class ProjectionSettings(BusSettings, KeywordSettings):
    """A service that builds Postgres tables from the log.

    ``DB_SCHEMA`` and ``KAFKA_GROUP_ID`` let a new projection version be rebuilt beside the
    live one (its own tables and consumer group) and switched to once it has caught up.
    """

    database_url: str = Field(min_length=1)
    db_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    kafka_group_id: str | None = None
    # Services with an inbox (ai, sender): how long past a call's own deadline its lease
    # lasts. A crashed worker's items wait this long for another worker; a shorter grace
    # risks a second call (harmless: outcomes are fenced, sends looked up) for a slow one.
    inbox_lease_grace_s: float = Field(30.0, ge=1, le=600)
    # WhatsApp takes free-form messages only this long after the participant's last message
    # (24 hours); after it, only approved templates.
    whatsapp_window_s: float = Field(86_400.0, gt=0, le=86_400)
