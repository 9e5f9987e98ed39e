"""The gateway's HTTP behaviour, with the in-memory bus standing in for Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from parley_dev.serve import serving
from parley_gateway.app import EMPTY_TWIML, create_app
from parley_gateway.settings import GatewaySettings
from parley_shared.memory import InMemoryBus
from tests.helpers import AUTH_TOKEN, form, inbound_params, signed

PUBLIC = "https://sms.example.org"
INBOUND = "/webhooks/twilio/messages"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
async def client(bus: InMemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC)
    async with (
        serving(create_app(settings, publisher=bus)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        yield http


async def test_signed_inbound_is_published_and_answered_with_empty_twiml(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    params = inbound_params()
    response = await client.post(
        INBOUND, content=form(params), headers=signed(PUBLIC + INBOUND, params)
    )
    assert response.status_code == 200
    assert response.text == EMPTY_TWIML
    assert response.headers["content-type"].startswith("text/xml")
    [event] = bus.events("message.received")
    assert event.payload.message_sid == params["MessageSid"]  # type: ignore[attr-defined]


async def test_signature_over_the_local_url_is_refused(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    params = inbound_params()
    local = str(client.base_url) + INBOUND
    response = await client.post(INBOUND, content=form(params), headers=signed(local, params))
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.json()["detail"]
    assert bus.events("message.received") == []


async def test_query_string_is_part_of_the_signed_url(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    params = inbound_params()
    path = INBOUND + "?tenant=acme"
    ok = await client.post(path, content=form(params), headers=signed(PUBLIC + path, params))
    bad = await client.post(path, content=form(params), headers=signed(PUBLIC + INBOUND, params))
    assert (ok.status_code, bad.status_code) == (200, 403)


@pytest.mark.parametrize(
    ("content", "headers", "status", "detail"),
    [
        ('{"Body": "x"}', {"Content-Type": "application/json"}, 415, "content type"),
        ("Body=x", {}, 415, "content type"),
        (b"Body=\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}, 400, "UTF-8"),
        (
            "B=" + "x" * 70_000,
            {"Content-Type": "application/x-www-form-urlencoded"},
            413,
            "larger than",
        ),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    client: httpx.AsyncClient,
    bus: InMemoryBus,
    content: str | bytes,
    headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    response = await client.post(INBOUND, content=content, headers=headers)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert bus.events("message.received") == []


async def test_signed_but_incomplete_webhook_is_a_400(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    params = {k: v for k, v in inbound_params().items() if k != "From"}
    response = await client.post(
        INBOUND, content=form(params), headers=signed(PUBLIC + INBOUND, params)
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "missing required parameter From"


async def test_chunked_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    response = await client.post(
        INBOUND, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


async def test_broker_down_is_a_503_and_nothing_claimed(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    bus.available = False
    params = inbound_params()
    response = await client.post(
        INBOUND, content=form(params), headers=signed(PUBLIC + INBOUND, params)
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    bus.available = True
    again = await client.post(
        INBOUND, content=form(params), headers=signed(PUBLIC + INBOUND, params)
    )
    assert again.status_code == 200
    assert len(bus.events("message.received")) == 1


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
