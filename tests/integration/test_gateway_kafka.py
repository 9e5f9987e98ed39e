"""The gateway against a real Kafka-protocol broker."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from parley_dev.infra import Tansu
from parley_dev.serve import serving
from parley_gateway.app import create_app
from parley_gateway.settings import GatewaySettings
from parley_shared.db import Pool
from parley_shared.events import MessageReceived, StatusUpdated, decode
from parley_shared.identity import inbound_event_id
from parley_shared.keyring import Keyring
from parley_shared.settings import BusSettings
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, form, inbound_params, read_topic, signed

PUBLIC = "https://parley.example.net"
INBOUND = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"


def gateway_settings(bus: BusSettings, database: str, timeout_s: float = 5.0) -> GatewaySettings:
    return GatewaySettings(
        database_url=database,
        twilio_auth_token=AUTH_TOKEN,
        public_base_url=PUBLIC,
        kafka_bootstrap_servers=bus.kafka_bootstrap_servers,
        kafka_topic_prefix=bus.kafka_topic_prefix,
        kafka_topic_partitions=3,
        publish_timeout_s=timeout_s,
    )


@pytest.fixture
async def gateway(bus_settings: BusSettings, database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(create_app(gateway_settings(bus_settings, database))) as base,
        httpx.AsyncClient(base_url=base, timeout=20) as http,
    ):
        yield http


async def post_signed(http: httpx.AsyncClient, path: str, params: dict[str, str]) -> httpx.Response:
    return await http.post(path, content=form(params), headers=signed(PUBLIC + path, params))


async def test_inbound_lands_on_message_received_and_a_retry_keeps_its_event_id(
    gateway: httpx.AsyncClient, bus_settings: BusSettings, pool: Pool
) -> None:
    params = inbound_params(
        From="whatsapp:+15551110000",
        To="whatsapp:+14155238886",
        ProfileName="Grace",
        WaId="15551110000",
        Body="Is it open today?",
    )
    first = await post_signed(gateway, INBOUND, params)
    retry = await post_signed(gateway, INBOUND, params)
    assert (first.status_code, retry.status_code) == (200, 200)

    records = await read_topic(bus_settings, "message.received", expect=2)
    assert len(records) == 2
    # On the log, nothing says who wrote or what: the participant's fields are sealed.
    for record in records:
        for personal in ("Is it open today?", "Grace", "5551110000"):
            assert personal.encode() not in (record.value or b"")
    sealed = [decode(r.value or b"") for r in records]
    assert all(e.sealed is not None for e in sealed)
    events = await Keyring(pool).open(sealed)
    assert {e.event_id for e in events} == {inbound_event_id(params["MessageSid"])}
    event = events[0]
    assert records[0].key == event.conversation_key.encode()
    assert records[0].partition == records[1].partition
    assert isinstance(event.payload, MessageReceived)
    assert event.payload.channel == "whatsapp"
    assert event.payload.participant == "whatsapp:+15551110000"
    assert event.payload.body == "Is it open today?"
    assert event.payload.profile_name == "Grace"
    assert event.payload.params["Body"] == ["Is it open today?"]
    # Both deliveries were sealed under the one key the participant has.
    assert len({e.subject for e in sealed}) == 1 and sealed[0].subject is not None


async def test_bad_signature_is_403_and_nothing_is_published(
    gateway: httpx.AsyncClient, bus_settings: BusSettings
) -> None:
    params = inbound_params()
    headers = signed(PUBLIC + INBOUND, params, token="not-the-token")
    response = await gateway.post(INBOUND, content=form(params), headers=headers)
    unsigned = await gateway.post(
        INBOUND, content=form(params), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (response.status_code, unsigned.status_code) == (403, 403)
    assert await read_topic(bus_settings, "message.received", expect=1, timeout_s=2) == []


async def test_status_callback_lands_on_status_updated(
    gateway: httpx.AsyncClient, bus_settings: BusSettings, pool: Pool
) -> None:
    sid = "SM" + "d" * 32
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT_SID,
        "MessageStatus": "undelivered",
        "SmsStatus": "undelivered",
        "ErrorCode": "30003",
        "From": "+15557654321",
        "To": "+15551230001",
        "ApiVersion": "2010-04-01",
    }
    assert (await post_signed(gateway, STATUS, params)).status_code == 200
    [record] = await read_topic(bus_settings, "status.updated", expect=1)
    [event] = await Keyring(pool).open([decode(record.value or b"")])
    assert isinstance(event.payload, StatusUpdated)
    assert (event.payload.status, event.payload.error_code) == ("undelivered", 30003)
    assert event.payload.participant == "+15551230001"  # a status names whom we sent to


async def test_broker_down_means_503_and_the_same_webhook_succeeds_once_it_is_back(
    topic_prefix: str, database: str
) -> None:
    broker = Tansu(Path(tempfile.mkdtemp(prefix="parley-tansu-outage-")))
    broker.start()
    bus = BusSettings(kafka_bootstrap_servers=broker.bootstrap, kafka_topic_prefix=topic_prefix)
    try:
        app = create_app(gateway_settings(bus, database, timeout_s=2.0))
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as http:
            params = inbound_params(Body="during the outage")
            assert (await post_signed(http, INBOUND, inbound_params())).status_code == 200

            # SIGSTOP makes the broker unreachable while keeping its (in-memory) log, which
            # a restart of a memory-backed Tansu would wipe.
            assert broker.process is not None
            broker.process.send_signal(signal.SIGSTOP)
            try:
                down = await post_signed(http, INBOUND, params)
                assert down.status_code == 503
                assert (await http.get("/readyz")).status_code == 503
            finally:
                broker.process.send_signal(signal.SIGCONT)

            up = await post_signed(http, INBOUND, params)
            assert up.status_code == 200
            assert (await http.get("/readyz")).status_code == 200
        records = await read_topic(bus, "message.received", expect=1, settle_s=1.0)
        sids = [decode(r.value or b"").payload.message_sid for r in records]  # type: ignore[attr-defined]
        assert params["MessageSid"] in sids
    finally:
        broker.stop()
