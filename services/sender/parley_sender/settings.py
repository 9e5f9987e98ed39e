from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr

from parley_shared.settings import ProjectionSettings


class SenderSettings(ProjectionSettings):
    twilio_account_sid: str = Field(min_length=2, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr = Field(min_length=1)
    twilio_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    public_base_url: AnyHttpUrl
    # Sends in flight at once; they hold no database connection.
    sender_max_in_flight: int = Field(256, ge=1, le=10_000)
    sender_pool_size: int = Field(8, ge=2, le=100)
    # How long a reply is retried through a Twilio outage, from its first attempt.
    sender_retry_window_s: float = Field(900.0, ge=1, le=86_400)
    sender_timeout_s: float = Field(15.0, gt=0, le=120)
    sender_host: str = "0.0.0.0"
    sender_port: int = Field(8083, ge=1, le=65535)
