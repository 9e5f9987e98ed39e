from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from parley_shared.settings import ProjectionSettings


class ConversationSettings(ProjectionSettings):
    api_token: SecretStr = Field(min_length=8)
    # To fetch participants' media for operators (GET …/media/{n}); unset, that answers 503.
    twilio_account_sid: str | None = Field(None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    # Hosts media is fetched from, comma-separated; only Twilio's unless a sandbox is added.
    twilio_media_hosts: str = "api.twilio.com,media.twiliocdn.com,mms.twiliocdn.com"
    # How often tenants' retention is applied (``retention``).
    retention_sweep_s: float = Field(3600.0, gt=0)
    conversation_host: str = "0.0.0.0"
    conversation_port: int = Field(8081, ge=1, le=65535)
    # Where the console (served here at /console/) calls the other APIs; "{host}" is the
    # host the browser loaded the console from. Behind one ingress, set them to "".
    console_ai_url: str = "http://{host}:8082"
    console_analytics_url: str = "http://{host}:8084"
    console_sender_url: str = "http://{host}:8083"

    @field_validator("twilio_account_sid", "twilio_auth_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        # docker-compose passes unset variables as empty strings.
        return None if value == "" else value
