"""Deterministic identities: every service derives the same ids from the same facts.

Event ids come from what makes an event unique in the outside world (Twilio's MessageSid,
or MessageSid + status), so a webhook Twilio retries, even to another gateway replica, yields
the same event id and every consumer drops the repeat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from uuid import UUID, uuid5

from parley_shared.events import Channel

# Fixed forever: changing it would change every id already on the log.
PARLEY_NAMESPACE = UUID("6f1c6c55-4a51-4d0b-9f0e-2b7c0e8f5a11")

WHATSAPP_PREFIX = "whatsapp:"


def channel_of(address: str) -> Channel:
    return "whatsapp" if address.lower().startswith(WHATSAPP_PREFIX) else "sms"


def addresses_of(numbers: Iterable[str]) -> list[str]:
    """Every ``our_address`` bare numbers stand for: each SMS and WhatsApp form, sorted."""
    return sorted({*numbers, *(WHATSAPP_PREFIX + n for n in numbers)})


def bare_number(address: str) -> str:
    """The phone number without Twilio's channel prefix, e.g. ``whatsapp:+1555`` -> ``+1555``."""
    address = address.strip()
    if address.lower().startswith(WHATSAPP_PREFIX):
        return address[len(WHATSAPP_PREFIX) :]
    return address


def conversation_key(
    *,
    account_sid: str,
    our_endpoint: str,
    participant: str,
    channel: str,
) -> str:
    """The Kafka key that keeps one conversation's events in order on one partition.

    ``our_endpoint`` is the Messaging Service SID when the number belongs to a pool (replies
    may go out from another number of the pool), else our phone number. The participant's
    number is hashed so keys, which show up in logs and tooling, carry no phone numbers.
    """
    material = "\x1f".join(
        (channel, account_sid.strip(), bare_number(our_endpoint), bare_number(participant))
    )
    return "cv_" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def endpoint_of(our_address: str, messaging_service_sid: str | None) -> str:
    return messaging_service_sid or our_address


def inbound_event_id(message_sid: str) -> UUID:
    return uuid5(PARLEY_NAMESPACE, f"message.received/{message_sid}")


def status_event_id(message_sid: str, status: str) -> UUID:
    return uuid5(PARLEY_NAMESPACE, f"status.updated/{message_sid}/{status.lower()}")


def call_event_id(call_sid: str, status: str) -> UUID:
    return uuid5(PARLEY_NAMESPACE, f"call.updated/{call_sid}/{status.lower()}")


def email_event_id(message_id: str) -> UUID:
    return uuid5(PARLEY_NAMESPACE, f"email.received/{message_id}")


def derived_event_id(event_type: str, cause: UUID, discriminator: str = "") -> UUID:
    """The id of the one event of ``event_type`` that ``cause`` leads to."""
    return uuid5(PARLEY_NAMESPACE, f"{event_type}/{cause}/{discriminator}")
