from __future__ import annotations

import pytest

from parley_shared.prices import DEFAULT_PRICES, ModelPrice, PriceSettings


def test_cost_is_per_million_tokens_in_and_out() -> None:
    price = ModelPrice(input_per_1m=0.15, output_per_1m=0.60)
    assert price.cost_usd(1_000_000, 0) == pytest.approx(0.15)
    assert price.cost_usd(2_000, 500) == pytest.approx(0.0003 + 0.0003)


@pytest.mark.parametrize("variable", ["MODEL_PRICES", "ANALYTICS_MODEL_PRICES"])
def test_one_variable_prices_models_for_every_service(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    assert PriceSettings().model_prices == DEFAULT_PRICES
    monkeypatch.setenv(variable, '{"local-llm": {"input_per_1m": 0, "output_per_1m": 0.1}}')
    assert PriceSettings().model_prices == {
        "local-llm": ModelPrice(input_per_1m=0, output_per_1m=0.1)
    }
