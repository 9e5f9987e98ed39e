"""The Telnyx sandbox behaves as Telnyx does for what Parley uses: the official SDK sends through
it on its normal code path (bearer key, ``Idempotency-Key``), and the signed status webhooks it
posts pass the gateway's Telnyx adapter and become forward-moving ``status.updated`` events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telnyx
from telnyx import AsyncTelnyx

from parley_dev.serve import serving
from parley_dev.telnyx_sandbox import WEBHOOK_PATH, TelnyxSandbox, create_app
from parley_gateway.app import create_app as gateway_app
from parley_gateway.settings import GatewaySettings
from parley_shared.events import StatusUpdated
from parley_shared.memory import InMemoryBus
from tests.e2e.conftest import eventually
from tests.helpers import AUTH_TOKEN

PUBLIC = "https://parley.test"
OURS, THEM = "+15550009999", "+15550188777"


@pytest.fixture
async def wired() -> AsyncIterator[tuple[TelnyxSandbox, AsyncTelnyx, InMemoryBus]]:
    box = TelnyxSandbox(api_key="KEY-test")
    bus = InMemoryBus()
    settings = GatewaySettings(
        twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC, telnyx_public_key=box.public_key
    )
    async with (
        serving(create_app(box)) as sandbox_url,
        serving(gateway_app(settings, publisher=bus)) as gateway_url,
    ):
        box.deliver_to = (PUBLIC, gateway_url)
        client = AsyncTelnyx(api_key="KEY-test", base_url=sandbox_url + "/v2", max_retries=0)
        try:
            yield box, client, bus
        finally:
            await client.close()


async def test_a_send_is_taken_once_and_reported_through_the_gateway(
    wired: tuple[TelnyxSandbox, AsyncTelnyx, InMemoryBus],
) -> None:
    box, client, bus = wired
    sends = [
        await client.messages.send(
            to=THEM,
            from_=OURS,
            text="Yes, 10 to 4.",
            webhook_url=PUBLIC + WEBHOOK_PATH,
            idempotency_key="reply-1",
        )
        for _ in range(2)  # a retry after a lost answer
    ]
    assert sends[0].data is not None and sends[1].data is not None
    assert sends[0].data.id == sends[1].data.id
    assert [m["to"][0]["phone_number"] for m in box.sent] == [THEM]

    async def reported() -> list[str] | None:
        statuses = [
            e.payload.status
            for e in bus.events("status.updated")
            if isinstance(e.payload, StatusUpdated)
        ]
        return statuses if len(statuses) == 2 else None

    assert await eventually(reported) == ["sent", "delivered"]
    [first, _] = bus.events("status.updated")
    assert isinstance(first.payload, StatusUpdated)
    assert (first.payload.provider, first.payload.message_sid) == ("telnyx", sends[0].data.id)
    assert box.webhooks == [("message.sent", 200), ("message.finalized", 200)]


async def test_a_participants_text_reaches_the_gateway_signed(
    wired: tuple[TelnyxSandbox, AsyncTelnyx, InMemoryBus],
) -> None:
    box, _, bus = wired
    assert await box.text(THEM, OURS, "hello") == 200
    [event] = bus.events("message.received")
    assert (event.payload.provider, event.payload.body) == ("telnyx", "hello")  # type: ignore[attr-defined]


async def test_the_sdk_sees_telnyxs_refusals(
    wired: tuple[TelnyxSandbox, AsyncTelnyx, InMemoryBus],
) -> None:
    box, client, _ = wired
    with pytest.raises(telnyx.UnprocessableEntityError):
        await client.messages.send(to="not a number", from_=OURS, text="x")
    wrong = AsyncTelnyx(api_key="KEY-wrong", base_url=str(client.base_url), max_retries=0)
    with pytest.raises(telnyx.AuthenticationError):
        await wrong.messages.send(to=THEM, from_=OURS, text="x")
    await wrong.close()
    assert box.sent == []
