"""Pure decisions of the gateway for Telnyx: from a verified Telnyx messaging webhook (JSON,
API v2) to Parley events.

Telnyx posts every messaging event of a number to one URL: ``message.received`` for an
inbound message, ``message.sent`` and ``message.finalized`` as a message we sent moves on.
Each becomes the same event a Twilio webhook does, with ``provider`` "telnyx", so nothing
after the gateway needs to know where a message came from. Telnyx's message ids are UUIDs,
so its events' ids cannot meet Twilio's (``SM…``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from parley_gateway.core import MAX_MEDIA, InvalidWebhook
from parley_shared.events import Envelope, Media, MessageReceived, StatusUpdated, new_envelope
from parley_shared.identity import conversation_key, inbound_event_id, status_event_id
from parley_shared.keywords import HUMAN, intent_of
from parley_shared.telnyx import error_code

PROVIDER = "telnyx"
# Telnyx's recipient statuses onto Parley's (Twilio's) forward-only ones. Telnyx reports a
# carrier that never confirmed as ``delivery_unconfirmed``: it left us, nothing more is known.
STATUSES = {
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "sending_failed": "failed",
    "delivery_failed": "undelivered",
    "delivery_unconfirmed": "sent",
}


def parse(body: bytes) -> dict[str, Any]:
    """The webhook's JSON object, or InvalidWebhook."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise InvalidWebhook("body is not a Telnyx webhook: no data object")
    return document


def event_of(
    document: Mapping[str, Any], received_at: datetime, human: frozenset[str] = HUMAN
) -> Envelope | None:
    """The event a Telnyx webhook stands for, None for event types Parley does not keep;
    ``human`` are the words that ask for a person (HANDOFF_KEYWORDS)."""
    data = document["data"]
    event_type = _text(data, "event_type")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise InvalidWebhook("data.payload must be an object")
    if event_type == "message.received":
        return _inbound(payload, received_at, human)
    if event_type in ("message.sent", "message.finalized"):
        return _status(payload, received_at)
    return None


def _inbound(p: Mapping[str, Any], received_at: datetime, human: frozenset[str]) -> Envelope:
    message_id = _text(p, "id")
    account = _text(p, "organization_id")
    participant = _number(p.get("from"), "from")
    recipients = p.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise InvalidWebhook("payload.to must list our number")
    our_address = _number(recipients[0], "to[0]")
    body = _optional_text(p, "text") or ""
    payload = MessageReceived(
        provider=PROVIDER,
        message_sid=message_id,
        account_sid=account,
        messaging_service_sid=None,
        channel="sms",
        participant=participant,
        our_address=our_address,
        body=body,
        media=_media(p.get("media")),
        num_segments=_int(p, "parts"),
        message_type=_optional_text(p, "type"),
        params={"telnyx": [json.dumps(p, sort_keys=True)]},
        intent=intent_of(body, human),
    )
    return _envelope(payload, inbound_event_id(message_id), received_at)


def _status(p: Mapping[str, Any], received_at: datetime) -> Envelope:
    message_id = _text(p, "id")
    account = _text(p, "organization_id")
    recipients = p.get("to")
    if not isinstance(recipients, list) or not recipients or not isinstance(recipients[0], dict):
        raise InvalidWebhook("payload.to must list the recipient")
    participant = _number(recipients[0], "to[0]")
    our_address = _number(p.get("from"), "from")
    reported = _text(recipients[0], "status")
    status = STATUSES.get(reported)
    if status is None:
        raise InvalidWebhook(f"status {reported!r} is not a Telnyx message status")
    payload = StatusUpdated(
        provider=PROVIDER,
        message_sid=message_id,
        account_sid=account,
        status=status,
        channel="sms",
        participant=participant,
        our_address=our_address,
        error_code=error_code(p.get("errors")),
        params={"telnyx": [json.dumps(p, sort_keys=True)]},
    )
    return _envelope(payload, status_event_id(message_id, status), received_at)


def _envelope(
    payload: MessageReceived | StatusUpdated, event_id: UUID, received_at: datetime
) -> Envelope:
    """A Telnyx number's messages are SMS; its conversation is keyed as a Twilio one is."""
    return new_envelope(
        payload,
        event_id=event_id,
        conversation_key=conversation_key(
            account_sid=payload.account_sid,
            our_endpoint=payload.our_address,
            participant=payload.participant,
            channel="sms",
        ),
        account_sid=payload.account_sid,
        occurred_at=received_at,
    )


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidWebhook(f"missing required field {name}")
    return value.strip()


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidWebhook(f"field {name} must be a string")
    if value is not None and "\x00" in value:
        raise InvalidWebhook(f"field {name} contains a NUL character")
    return value


def _int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidWebhook(f"field {name} must be an integer")
    return value


def _number(party: object, where: str) -> str:
    if not isinstance(party, dict):
        raise InvalidWebhook(f"{where} must be an object with a phone_number")
    number = _text(party, "phone_number")
    if not number.startswith("+") or not number[1:].isdigit() or not 6 <= len(number) <= 16:
        raise InvalidWebhook(f"{where}.phone_number {number!r} is not an E.164 number")
    return number


def _media(items: object) -> tuple[Media, ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or len(items) > MAX_MEDIA:
        raise InvalidWebhook(f"media must be a list of at most {MAX_MEDIA} items")
    media = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidWebhook("each media item must be an object")
        media.append(
            Media(url=_text(item, "url"), content_type=_optional_text(item, "content_type"))
        )
    return tuple(media)
