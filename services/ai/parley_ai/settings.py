from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from parley_shared.settings import ProjectionSettings

DEFAULT_PROMPT = (
    "You are a helpful assistant answering text messages for a business. Be brief, friendly "
    "and concrete. Plain text only: no markdown, no lists."
)
DEFAULT_FALLBACK = "Sorry, we can't answer right now. We'll get back to you shortly."


class AiSettings(ProjectionSettings):
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    ai_system_prompt: str = DEFAULT_PROMPT
    ai_max_tokens: int = Field(300, ge=16, le=4096)
    ai_temperature: float = Field(0.4, ge=0, le=2)
    ai_history_turns: int = Field(10, ge=0, le=100)
    ai_timeout_s: float = Field(20.0, gt=0, le=120)
    ai_max_retries: int = Field(3, ge=0, le=10)
    ai_max_in_flight: int = Field(8, ge=1, le=256)
    # How long a message waits before it is answered, so that a close the operator made just
    # before it, on another topic, has been read: the cost is this much reply latency.
    ai_settle_ms: int = Field(300, ge=0, le=10_000)
    ai_fallback_reply: str = Field(DEFAULT_FALLBACK, min_length=1, max_length=1600)
    # JSON file: {"+15550001": {"system_prompt": …, "model": …, "max_tokens": …, …}}
    ai_number_config: Path | None = None
    ai_host: str = "0.0.0.0"
    ai_port: int = Field(8082, ge=1, le=65535)
