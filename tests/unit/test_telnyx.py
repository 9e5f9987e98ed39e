"""Telnyx messaging webhooks through the gateway's Telnyx adapter: Ed25519 signatures checked by
the official SDK (replays refused by their timestamp), and each messaging event read into the
same events a Twilio webhook gives, marked ``provider`` "telnyx"."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from nacl.signing import SigningKey

from parley_gateway.core import InvalidWebhook
from parley_gateway.providers import Refused, Webhook
from parley_gateway.telnyx_provider import TelnyxProvider
from parley_shared.events import MessageReceived, StatusUpdated
from parley_shared.identity import conversation_key, inbound_event_id
from tests.helpers import TELNYX_KEY, TELNYX_PUBLIC_KEY, telnyx_signed

ORG = str(uuid.UUID(int=7))
OURS = "+15550001111"
THEM = "+15557778888"
KEY = TELNYX_KEY
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def inbound(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {
        "data": {
            "event_type": "message.received",
            "id": str(uuid.uuid4()),
            "payload": {
                "id": str(uuid.UUID(int=42)),
                "direction": "inbound",
                "organization_id": ORG,
                "from": {"phone_number": THEM, "carrier": "T-Mobile USA"},
                "to": [{"phone_number": OURS, "status": "webhook_delivered"}],
                "text": text,
                "type": "MMS",
                "parts": 1,
                "media": [
                    {"url": "https://media.telnyx.example/1.jpg", "content_type": "image/jpeg"}
                ],
                **extra,
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1},
    }


def finalized(status: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "data": {
            "event_type": "message.finalized",
            "payload": {
                "id": str(uuid.UUID(int=43)),
                "direction": "outbound",
                "organization_id": ORG,
                "from": {"phone_number": OURS},
                "to": [{"phone_number": THEM, "status": status}],
                "errors": errors or [],
            },
        }
    }


def webhook(document: dict[str, Any], *, key: SigningKey = KEY, age_s: float = 0) -> Webhook:
    body = json.dumps(document).encode()
    return Webhook(
        url="https://sms.example.org/webhooks/telnyx/messages",
        headers={name.lower(): value for name, value in telnyx_signed(body, key, age_s).items()},
        body=body,
        received_at=NOW,
    )


PROVIDER = TelnyxProvider(TELNYX_PUBLIC_KEY)


def test_an_inbound_message_reads_as_twilios_do_with_its_provider() -> None:
    event = PROVIDER.event_of("messages", webhook(inbound()))
    assert event is not None and isinstance(event.payload, MessageReceived)
    p = event.payload
    assert (p.provider, p.channel, p.participant, p.our_address, p.body) == (
        "telnyx",
        "sms",
        THEM,
        OURS,
        "Hello there",
    )
    assert [(m.url, m.content_type) for m in p.media] == [
        ("https://media.telnyx.example/1.jpg", "image/jpeg")
    ]
    assert event.event_id == inbound_event_id(str(uuid.UUID(int=42)))  # Telnyx retries: one event
    assert event.conversation_key == conversation_key(
        account_sid=ORG, our_endpoint=OURS, participant=THEM, channel="sms"
    )
    assert json.loads(p.params["telnyx"][0])["from"]["carrier"] == "T-Mobile USA"
    assert p.intent == "none"
    assert PROVIDER.event_of("messages", webhook(inbound("STOP"))).payload.intent == "opt_out"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reported", "status"),
    [
        ("queued", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sending_failed", "failed"),
        ("delivery_failed", "undelivered"),
        ("delivery_unconfirmed", "sent"),
    ],
)
def test_statuses_map_onto_the_forward_only_ones(reported: str, status: str) -> None:
    event = PROVIDER.event_of("messages", webhook(finalized(reported, [{"code": "40300"}])))
    assert event is not None and isinstance(event.payload, StatusUpdated)
    assert (event.payload.status, event.payload.error_code) == (status, 40300)
    assert (event.payload.participant, event.payload.our_address) == (THEM, OURS)
    assert event.payload.provider == "telnyx"


def test_other_event_types_are_accepted_and_not_kept() -> None:
    document = inbound()
    document["data"]["event_type"] = "message.received.failed"
    assert PROVIDER.event_of("messages", webhook(document)) is None


@pytest.mark.parametrize(
    "hook",
    [
        pytest.param(lambda: webhook(inbound(), key=SigningKey(b"x" * 32)), id="another key"),
        pytest.param(lambda: webhook(inbound(), age_s=400), id="a replay: 400 s old"),
        pytest.param(
            lambda: Webhook(**{**webhook(inbound()).__dict__, "headers": {}}), id="unsigned"
        ),
        pytest.param(
            lambda: Webhook(
                **{
                    **webhook(inbound()).__dict__,
                    "body": json.dumps(inbound("tampered")).encode(),
                }
            ),
            id="body changed after signing",
        ),
    ],
)
def test_unverified_webhooks_are_refused(hook: Any) -> None:
    with pytest.raises(Refused):
        PROVIDER.event_of("messages", hook())


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"data": "x"}, "no data object"),
        ({"data": {"event_type": "message.received", "payload": []}}, "payload"),
        (inbound(id=None), "id"),
        (inbound(organization_id=None), "organization_id"),
        (inbound(**{"from": {"phone_number": "not a number"}}), "E.164"),
        (inbound(to=[]), "our number"),
        (inbound(text=7), "string"),
        (inbound(media=[{"content_type": "image/png"}]), "url"),
        (finalized("exploded"), "not a Telnyx message status"),
    ],
)
def test_malformed_webhooks_say_why(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidWebhook, match=reason):
        PROVIDER.event_of("messages", webhook(document))


def test_a_body_that_is_not_json_is_malformed() -> None:
    hook = Webhook(**{**webhook(inbound()).__dict__, "body": b"\xff{"})
    with pytest.raises(InvalidWebhook, match="not JSON"):
        PROVIDER.event_of("messages", hook)
