"""Participants' personal data on the log, encrypted per participant (crypto-shredding).

The log is immutable and kept forever, yet a participant may ask to be forgotten. So the
fields of an event that say who a participant is or what they wrote (their number, bodies,
profile name, media, raw Twilio parameters) go on the log encrypted with a key of that
participant's own, kept in Postgres (``keyring``); deleting the key erases them from every
copy of the log at once, and a rebuild then shows "[erased]" where they were.

This module is the pure part: which fields are personal, and sealing and opening one event
with a given key (AES-256-GCM, the event id as associated data, so a box cannot be moved to
another event). A sealed event keeps every other field in clear (ids, times, statuses, token
counts, the conversation key, which is already a hash), so what is counted and how messages
are placed in conversations does not depend on whether a key still exists.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from parley_shared.events import (
    CallUpdated,
    ConversationChanged,
    EmailReceived,
    Envelope,
    HandoffChanged,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    Payload,
    ReplyGenerated,
    StatusUpdated,
)

ERASED = "[erased]"
KEY_BYTES = 32
_NONCE_BYTES = 12

# Each payload type's personal fields, with the value each holds while sealed. A field left
# out here goes on the log in clear: add new personal fields here with the field itself.
PERSONAL: dict[type[Payload], Mapping[str, Any]] = {
    MessageReceived: {
        "participant": "",
        "body": "",
        "media": (),
        "profile_name": None,
        "wa_id": None,
        "location": None,
        "button_text": None,
        "button_payload": None,
        "params": {},
    },
    StatusUpdated: {"participant": "", "params": {}},
    ReplyGenerated: {"participant": "", "body": ""},
    # Twilio's error messages quote the number they refused.
    MessageSent: {"participant": "", "body": "", "error_message": None},
    OutboundRequested: {
        "participant": "",
        "body": "",
        "media_urls": (),
        "content_variables": {},
    },
    HandoffChanged: {"participant": ""},
    ConversationChanged: {"participant": ""},
    CallUpdated: {"participant": "", "params": {}},
    EmailReceived: {
        "participant": "",
        "sender_name": None,
        "subject": "",
        "body": "",
        "params": {},
    },
}


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def personal(envelope: Envelope) -> bool:
    """Whether ``envelope`` carries personal fields in clear (and so is to be sealed)."""
    return envelope.sealed is None and type(envelope.payload) in PERSONAL


def participant_of(envelope: Envelope) -> str:
    participant: str = getattr(envelope.payload, "participant", "")
    return participant


def seal(envelope: Envelope, subject: UUID, key: bytes) -> Envelope:
    """``envelope`` with its personal fields encrypted under ``key`` and emptied in clear."""
    placeholders = PERSONAL[type(envelope.payload)]
    fields = envelope.payload.model_dump(mode="json", include=set(placeholders))
    nonce = os.urandom(_NONCE_BYTES)
    box = AESGCM(key).encrypt(nonce, json.dumps(fields).encode(), envelope.event_id.bytes)
    return envelope.model_copy(
        update={
            "payload": envelope.payload.model_copy(update=dict(placeholders)),
            "subject": subject,
            "sealed": base64.urlsafe_b64encode(nonce + box).decode(),
        }
    )


def opened(envelope: Envelope, key: bytes | None) -> Envelope:
    """``envelope`` with its personal fields back, or "[erased]" in them when ``key`` is gone
    (or does not open the box: a box is never half trusted)."""
    if envelope.sealed is None:
        return envelope
    if key is None:
        return forgotten(envelope)
    try:
        raw = base64.urlsafe_b64decode(envelope.sealed)
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], envelope.event_id.bytes)
        fields = json.loads(plain)
        if not isinstance(fields, dict):
            return forgotten(envelope)
        payload = type(envelope.payload).model_validate({**envelope.payload.__dict__, **fields})
    except (InvalidTag, ValueError, ValidationError):
        return forgotten(envelope)
    return envelope.model_copy(update={"payload": payload, "sealed": None})


def erased(payload_type: type[Payload]) -> dict[str, Any]:
    """What a participant's fields read once their key is deleted: text says "[erased]",
    the rest is empty."""
    return {
        name: ERASED if value == "" else value
        for name, value in PERSONAL.get(payload_type, {}).items()
    }


def forgotten(envelope: Envelope) -> Envelope:
    """An opened event as it reads once its participant's key is gone: what a projection
    keeps of it after an erasure, the same as a rebuild would read from the log."""
    payload_type = type(envelope.payload)
    if payload_type not in PERSONAL:
        return envelope
    payload = payload_type.model_validate({**envelope.payload.__dict__, **erased(payload_type)})
    return envelope.model_copy(update={"payload": payload, "sealed": None})
