from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_shared.settings import ProjectionSettings


class TwilioSettings(BaseSettings):
    """The Twilio account, and the URL Twilio reaches Parley at."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    twilio_account_sid: str = Field(min_length=2, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr = Field(min_length=1)
    twilio_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    public_base_url: AnyHttpUrl


class TelnyxSettings(BaseSettings):
    """A Telnyx account, for replies to messages that came through its numbers (unset: those
    replies are recorded as not sent)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    telnyx_api_key: SecretStr | None = Field(None, min_length=1)
    telnyx_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.telnyx.com/v2")


class SenderSettings(ProjectionSettings, TwilioSettings, TelnyxSettings):
    # Bearer token of GET /v1/twilio/check (the console's set-up check); unset, it answers 401.
    api_token: SecretStr | None = None
    # Sends in flight at once; they hold no database connection.
    sender_max_in_flight: int = Field(256, ge=1, le=10_000)
    sender_pool_size: int = Field(8, ge=2, le=100)
    # How long a reply is retried through a Twilio outage, from its first attempt.
    sender_retry_window_s: float = Field(900.0, ge=1, le=86_400)
    sender_timeout_s: float = Field(15.0, gt=0, le=120)
    # JSON file: {"whatsapp:+14155238886": {"content_sid": "HX…", "body_variable": "1"}}.
    sender_whatsapp_templates: Path | None = None
    # Outbound pacing: segments per second per sending number (0: none; Twilio queues), and
    # per number or Messaging Service SID: {"MG…": 10, "+15550001": 1}.
    sender_segments_per_second: float = Field(0.0, ge=0, le=10_000)
    sender_segments_per_second_by_sender: dict[str, float] = Field(default_factory=dict)
    sender_host: str = "0.0.0.0"
    sender_port: int = Field(8083, ge=1, le=65535)
