"""Pure decisions of the gateway: from Twilio's form parameters (messages, their statuses,
calls' statuses) to Parley events.

No I/O here. Every function takes the parameters as Twilio sent them (name -> values) and
either returns an event or raises InvalidWebhook with a message a human can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from parley_shared.events import (
    CallOutcome,
    CallUpdated,
    Envelope,
    Location,
    Media,
    MessageReceived,
    StatusUpdated,
    new_envelope,
)
from parley_shared.identity import (
    call_event_id,
    channel_of,
    conversation_key,
    endpoint_of,
    inbound_event_id,
    status_event_id,
)
from parley_shared.keywords import HUMAN, intent_of

Params = Mapping[str, Sequence[str]]
MAX_MEDIA = 10  # Twilio's own limit per message.


class InvalidWebhook(ValueError):
    """The request is not a Twilio webhook we can accept; the message says why."""


def parse_form(body: bytes) -> dict[str, list[str]]:
    """Decode an ``application/x-www-form-urlencoded`` body, refusing anything not UTF-8."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidWebhook(f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except ValueError as exc:
        raise InvalidWebhook(f"body is not a valid form: {exc}") from exc
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise InvalidWebhook(f"parameter {name!r} contains a NUL character")
        params.setdefault(name, []).append(value)
    return params


def _one(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _required(params: Params, name: str) -> str:
    value = _one(params, name)
    if value is None or not value.strip():
        raise InvalidWebhook(f"missing required parameter {name}")
    return value.strip()


def _int(params: Params, name: str, *, default: int | None = None) -> int | None:
    value = _one(params, name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidWebhook(f"parameter {name} must be an integer, got {value!r}") from exc


def _float(params: Params, name: str) -> float | None:
    value = _one(params, name)
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise InvalidWebhook(f"parameter {name} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise InvalidWebhook(f"parameter {name} must be a finite number")
    return number


def _media(params: Params) -> tuple[Media, ...]:
    count = _int(params, "NumMedia", default=0) or 0
    if count < 0 or count > MAX_MEDIA:
        raise InvalidWebhook(f"NumMedia must be between 0 and {MAX_MEDIA}, got {count}")
    media = []
    for index in range(count):
        url = _one(params, f"MediaUrl{index}")
        if not url:
            raise InvalidWebhook(f"NumMedia is {count} but MediaUrl{index} is missing")
        media.append(Media(url=url, content_type=_one(params, f"MediaContentType{index}")))
    return tuple(media)


def _location(params: Params) -> Location | None:
    latitude, longitude = _float(params, "Latitude"), _float(params, "Longitude")
    if latitude is None or longitude is None:
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise InvalidWebhook("Latitude/Longitude out of range")
    return Location(
        latitude=latitude,
        longitude=longitude,
        address=_one(params, "Address"),
        label=_one(params, "Label"),
    )


# Twilio's SIDs: a two-letter prefix and 32 hex digits. The signed string has no separators
# between parameters, so only a strict shape keeps a forged SID from riding a valid signature.
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")


def _check_sid(name: str, value: str, prefixes: tuple[str, ...]) -> str:
    if not value.startswith(prefixes) or not _SID.fullmatch(value):
        raise InvalidWebhook(f"{name} {value!r} is not a Twilio SID")
    return value


def inbound_event(params: Params, received_at: datetime, human: frozenset[str] = HUMAN) -> Envelope:
    """A ``message.received`` event for an inbound-message webhook; ``human`` are the words
    that ask for a person (HANDOFF_KEYWORDS)."""
    message_sid = _check_sid(
        "MessageSid",
        _one(params, "MessageSid") or _required(params, "SmsMessageSid"),
        ("SM", "MM"),
    )
    account_sid = _check_sid("AccountSid", _required(params, "AccountSid"), ("AC",))
    participant = _required(params, "From")
    our_address = _required(params, "To")
    service_sid = _one(params, "MessagingServiceSid") or None
    channel = channel_of(our_address)
    if channel_of(participant) != channel:
        raise InvalidWebhook("From and To are on different channels")
    payload = MessageReceived(
        message_sid=message_sid,
        account_sid=account_sid,
        messaging_service_sid=service_sid,
        channel=channel,
        participant=participant,
        our_address=our_address,
        body=_one(params, "Body") or "",
        media=_media(params),
        num_segments=_int(params, "NumSegments"),
        profile_name=_one(params, "ProfileName"),
        wa_id=_one(params, "WaId"),
        message_type=_one(params, "MessageType"),
        location=_location(params),
        button_text=_one(params, "ButtonText"),
        button_payload=_one(params, "ButtonPayload"),
        params={name: list(values) for name, values in params.items()},
        intent=intent_of(_one(params, "Body") or "", human),
    )
    return new_envelope(
        payload,
        event_id=inbound_event_id(message_sid),
        conversation_key=conversation_key(
            account_sid=account_sid,
            our_endpoint=endpoint_of(our_address, service_sid),
            participant=participant,
            channel=channel,
        ),
        account_sid=account_sid,
        occurred_at=received_at,
    )


def status_event(params: Params, received_at: datetime) -> Envelope:
    """A ``status.updated`` event for a status callback of a message we sent."""
    message_sid = _check_sid(
        "MessageSid", _one(params, "MessageSid") or _required(params, "SmsSid"), ("SM", "MM")
    )
    account_sid = _check_sid("AccountSid", _required(params, "AccountSid"), ("AC",))
    status = (_one(params, "MessageStatus") or _required(params, "SmsStatus")).strip().lower()
    if not status.replace("_", "").isalpha():
        raise InvalidWebhook(f"MessageStatus {status!r} is not a status")
    # On a callback, From is our number and To is the participant.
    our_address = _required(params, "From")
    participant = _required(params, "To")
    service_sid = _one(params, "MessagingServiceSid") or None
    channel = channel_of(participant)
    payload = StatusUpdated(
        message_sid=message_sid,
        account_sid=account_sid,
        status=status,
        channel=channel,
        participant=participant,
        our_address=our_address,
        messaging_service_sid=service_sid,
        error_code=_int(params, "ErrorCode"),
        raw_dlr_done_date=_one(params, "RawDlrDoneDate"),
        params={name: list(values) for name, values in params.items()},
    )
    return new_envelope(
        payload,
        event_id=status_event_id(message_sid, status),
        conversation_key=conversation_key(
            account_sid=account_sid,
            our_endpoint=endpoint_of(our_address, service_sid),
            participant=participant,
            channel=channel,
        ),
        account_sid=account_sid,
        occurred_at=received_at,
    )


# Twilio's statuses of a call that ended with no one answering. ``completed`` means answered;
# every other status (queued, initiated, ringing, in-progress, and any Twilio adds later)
# means the call is under way.
MISSED = frozenset({"busy", "no-answer", "canceled", "failed"})


def outcome_of(status: str) -> CallOutcome:
    if status == "completed":
        return "completed"
    return "missed" if status in MISSED else "started"


def call_event(params: Params, received_at: datetime) -> Envelope:
    """A ``call.updated`` event for a voice status callback. The call joins the thread of
    the participant's number and ours on SMS: calls and texts of one person read as one
    history."""
    call_sid = _check_sid("CallSid", _required(params, "CallSid"), ("CA",))
    account_sid = _check_sid("AccountSid", _required(params, "AccountSid"), ("AC",))
    status = _required(params, "CallStatus").lower()
    if not status.replace("-", "").isalpha():
        raise InvalidWebhook(f"CallStatus {status!r} is not a status")
    direction = "inbound" if _required(params, "Direction") == "inbound" else "outbound"
    caller, called = _required(params, "From"), _required(params, "To")
    participant, our_address = (caller, called) if direction == "inbound" else (called, caller)
    if channel_of(participant) != "sms" or channel_of(our_address) != "sms":
        raise InvalidWebhook("a call's From and To must be phone numbers, not WhatsApp addresses")
    duration = _int(params, "CallDuration")
    if duration is not None and duration < 0:
        raise InvalidWebhook(f"CallDuration must not be negative, got {duration}")
    payload = CallUpdated(
        call_sid=call_sid,
        account_sid=account_sid,
        direction=direction,
        participant=participant,
        our_address=our_address,
        status=status,
        outcome=outcome_of(status),
        duration_s=duration,
        params={name: list(values) for name, values in params.items()},
    )
    return new_envelope(
        payload,
        event_id=call_event_id(call_sid, status),
        conversation_key=conversation_key(
            account_sid=account_sid,
            our_endpoint=our_address,
            participant=participant,
            channel="sms",
        ),
        account_sid=account_sid,
        occurred_at=received_at,
    )
