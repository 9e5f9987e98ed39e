from __future__ import annotations

from pydantic import Field, SecretStr

from parley_shared.prices import PriceSettings
from parley_shared.settings import ProjectionSettings


class AnalyticsSettings(ProjectionSettings, PriceSettings):
    api_token: SecretStr = Field(min_length=8)
    analytics_host: str = "0.0.0.0"
    analytics_port: int = Field(8084, ge=1, le=65535)
