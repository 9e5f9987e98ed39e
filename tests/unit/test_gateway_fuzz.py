"""Generated webhooks, signed right or wrong: the gateway answers 200 (and publishes exactly
one event) or a clear 4xx, never a 5xx. Schemathesis runs over its OpenAPI document too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley_dev.serve import serving
from parley_gateway.app import create_app
from parley_gateway.settings import GatewaySettings
from parley_shared.memory import InMemoryBus
from tests.e2e.test_fuzz import fuzz
from tests.helpers import AUTH_TOKEN, form, inbound_params, signed

PUBLIC = "https://sms.example.org"
PATHS = ("/webhooks/twilio/messages", "/webhooks/twilio/status")

text = st.text(st.characters(codec="utf-8"), max_size=80)
# Twilio's own parameter names, so the generated forms reach the parsing rules.
names = (
    st.sampled_from(
        [
            *inbound_params(),
            "MessageStatus",
            "ErrorCode",
            "NumMedia",
            "MediaUrl0",
            "Latitude",
            "Longitude",
            "NumSegments",
            "ButtonPayload",
            "RawDlrDoneDate",
        ]
    )
    | text
)


@st.composite
def webhooks(draw: st.DrawFn) -> tuple[str, dict[str, str], bool]:
    params = dict(inbound_params(MessageStatus="delivered"))
    for name in draw(st.lists(st.sampled_from(sorted(params)), max_size=4)):
        params.pop(name, None)
    params.update(draw(st.dictionaries(names, text, max_size=6)))
    return draw(st.sampled_from(PATHS)), params, draw(st.booleans())


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryBus]]:
    bus = InMemoryBus()
    settings = GatewaySettings(twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC)
    async with (
        serving(create_app(settings, publisher=bus)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        yield http, bus


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(webhook=webhooks())
async def test_generated_webhooks_get_a_200_or_a_clear_4xx(
    gateway: tuple[httpx.AsyncClient, InMemoryBus], webhook: tuple[str, dict[str, str], bool]
) -> None:
    http, bus = gateway
    path, params, sign_right = webhook
    headers = signed(PUBLIC + path if sign_right else "https://elsewhere.test" + path, params)
    published = sum(len(events) for events in bus.topics.values())
    response = await http.post(path, content=form(params), headers=headers)
    assert response.status_code in (200, 400, 403), response.text
    if response.status_code == 200:
        assert sign_right
        assert sum(len(events) for events in bus.topics.values()) == published + 1
    else:
        assert isinstance(response.json()["detail"], str)
        assert sum(len(events) for events in bus.topics.values()) == published


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_the_gateway_answers_generated_requests_as_documented(
    gateway: tuple[httpx.AsyncClient, InMemoryBus],
) -> None:
    http, _ = gateway
    document = (await http.get("/openapi.json")).json()
    assert await asyncio.to_thread(fuzz, document, str(http.base_url), {}) == []
