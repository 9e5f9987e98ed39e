"""The gateway's HTTP behaviour, with the in-memory bus standing in for Kafka."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from parley_dev.serve import serving
from parley_gateway.app import create_app
from parley_gateway.settings import GatewaySettings
from parley_gateway.twilio_provider import EMPTY_TWIML
from parley_shared.memory import InMemoryBus
from tests.helpers import (
    AUTH_TOKEN,
    TELNYX_PUBLIC_KEY,
    form,
    inbound_params,
    signed,
    telnyx_signed,
)

PUBLIC = "https://sms.example.org"
INBOUND = "/webhooks/twilio/messages"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
async def client(bus: InMemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(bus) as http:
        yield http


@asynccontextmanager
async def gateway(bus: InMemoryBus, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway publishing to ``bus``, with ``settings`` beside the Twilio ones."""
    app = create_app(
        GatewaySettings(twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC, **settings),
        publisher=bus,
    )
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as http:
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


TELNYX = "/webhooks/telnyx/messages"


def telnyx_inbound() -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": "message.received",
                "payload": {
                    "id": str(uuid.uuid4()),
                    "organization_id": str(uuid.uuid4()),
                    "from": {"phone_number": "+15557778888"},
                    "to": [{"phone_number": "+15550001111"}],
                    "text": "hi from Telnyx",
                },
            }
        }
    ).encode()


@pytest.fixture
async def with_telnyx(bus: InMemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(bus, telnyx_public_key=TELNYX_PUBLIC_KEY) as http:
        yield http


async def test_a_signed_telnyx_message_is_published_with_its_provider(
    with_telnyx: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    body = telnyx_inbound()
    response = await with_telnyx.post(TELNYX, content=body, headers=telnyx_signed(body))
    assert response.status_code == 200, response.text
    [event] = bus.events("message.received")
    assert (event.payload.provider, event.payload.body) == ("telnyx", "hi from Telnyx")  # type: ignore[attr-defined]
    # Twilio's webhooks are served beside it as before.
    params = inbound_params()
    twilio = await with_telnyx.post(
        INBOUND, content=form(params), headers=signed(PUBLIC + INBOUND, params)
    )
    assert twilio.status_code == 200


async def test_telnyx_webhooks_are_refused_unless_signed_now_by_its_key(
    with_telnyx: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    body = telnyx_inbound()
    old = await with_telnyx.post(TELNYX, content=body, headers=telnyx_signed(body, age_s=600))
    other = await with_telnyx.post(
        TELNYX, content=body, headers=telnyx_signed(body, SigningKey(b"o" * 32))
    )
    form_post = await with_telnyx.post(
        TELNYX, content=body, headers={**telnyx_signed(body), "Content-Type": FORM}
    )
    malformed = await with_telnyx.post(TELNYX, content=b"[1]", headers=telnyx_signed(b"[1]"))
    assert (old.status_code, other.status_code) == (403, 403)
    assert "too old" in old.json()["detail"]
    assert (form_post.status_code, malformed.status_code) == (415, 400)
    assert bus.events("message.received") == []


async def test_telnyx_is_not_served_unless_configured(client: httpx.AsyncClient) -> None:
    body = telnyx_inbound()
    response = await client.post(TELNYX, content=body, headers=telnyx_signed(body))
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "telnyx is not configured on this gateway (set TELNYX_PUBLIC_KEY)"
    )
