from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from parley_shared.settings import ProjectionSettings


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)


DEFAULT_PRICES = {
    "gpt-4o-mini": ModelPrice(input_per_1m=0.15, output_per_1m=0.60),
    "gpt-4o": ModelPrice(input_per_1m=2.50, output_per_1m=10.00),
    "gpt-4.1-mini": ModelPrice(input_per_1m=0.40, output_per_1m=1.60),
}


class AnalyticsSettings(ProjectionSettings):
    api_token: SecretStr = Field(min_length=8)
    # JSON, e.g. {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}
    analytics_model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES)
    )
    analytics_host: str = "0.0.0.0"
    analytics_port: int = Field(8084, ge=1, le=65535)
