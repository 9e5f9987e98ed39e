from __future__ import annotations

from pydantic import Field, SecretStr

from parley_shared.settings import ProjectionSettings


class ConversationSettings(ProjectionSettings):
    api_token: SecretStr = Field(min_length=8)
    conversation_host: str = "0.0.0.0"
    conversation_port: int = Field(8081, ge=1, le=65535)
