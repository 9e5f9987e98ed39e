"""What a model's tokens cost: one table for the ai (its cost metric) and analytics (cost per
model over any range). ``MODEL_PRICES`` overrides it; analytics' older
``ANALYTICS_MODEL_PRICES`` is still read."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m
        ) / 1_000_000


DEFAULT_PRICES = {
    "gpt-4o-mini": ModelPrice(input_per_1m=0.15, output_per_1m=0.60),
    "gpt-4o": ModelPrice(input_per_1m=2.50, output_per_1m=10.00),
    "gpt-4.1-mini": ModelPrice(input_per_1m=0.40, output_per_1m=1.60),
}


class PriceSettings(BaseSettings):
    """Mixed into the settings of the services that price tokens."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # JSON, e.g. {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        validation_alias=AliasChoices("model_prices", "analytics_model_prices"),
    )
