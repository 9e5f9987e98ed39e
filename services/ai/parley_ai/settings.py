from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_shared.prices import PriceSettings
from parley_shared.settings import ProjectionSettings

DEFAULT_PROMPT = (
    "You are a helpful assistant answering text messages for a business. Be brief, friendly "
    "and concrete. Plain text only: no markdown, no lists."
)
DEFAULT_FALLBACK = "Sorry, we can't answer right now. We'll get back to you shortly."


class RateLimitSettings(BaseSettings):
    """What the ai's projection decides by, so a rebuild decides the same."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # A participant's messages past this many in a minute get no AI reply (0: no limit).
    ai_rate_limit_per_minute: int = Field(20, ge=0, le=10_000)


class AiSettings(ProjectionSettings, RateLimitSettings, PriceSettings):
    # Bearer token of the AI settings API; unset, it answers 401.
    api_token: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    # The marked stand-in ("[offline assistant] You said: …") instead of a model: for trying
    # Parley without an account, never a default, so customers never get it by accident.
    ai_offline: bool = False
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    ai_system_prompt: str = DEFAULT_PROMPT
    ai_max_tokens: int = Field(300, ge=16, le=4096)
    ai_temperature: float = Field(0.4, ge=0, le=2)
    ai_history_turns: int = Field(10, ge=0, le=100)
    ai_timeout_s: float = Field(20.0, gt=0, le=120)
    ai_max_retries: int = Field(3, ge=0, le=10)
    # Model calls in flight at once. They hold no database connection, so this is bounded by
    # what the model provider allows, not by the pool.
    ai_max_in_flight: int = Field(512, ge=1, le=10_000)
    ai_pool_size: int = Field(8, ge=2, le=100)
    ai_fallback_reply: str = Field(DEFAULT_FALLBACK, min_length=1, max_length=1600)
    # JSON file: {"+15550001": {"system_prompt": …, "model": …, "max_tokens": …, …}}
    ai_number_config: Path | None = None
    ai_host: str = "0.0.0.0"

    @model_validator(mode="after")
    def _a_model_or_offline_on_purpose(self) -> AiSettings:
        has_key = self.openai_api_key is not None and self.openai_api_key.get_secret_value()
        if not has_key and not self.ai_offline:
            raise ValueError(
                "OPENAI_API_KEY is unset: set it (any value for a server that needs none, with "
                "OPENAI_BASE_URL), or AI_OFFLINE=1 for the offline stand-in (trying Parley only)"
            )
        return self

    @property
    def ai_deadline_s(self) -> float:
        """The most one answer may take, retries included; the SDK's own time-out bounds each
        try, this bounds them all (a server that trickles bytes defeats a read time-out)."""
        return self.ai_timeout_s * (self.ai_max_retries + 1) + 5.0

    ai_port: int = Field(8082, ge=1, le=65535)
