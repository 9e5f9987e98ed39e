from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_shared import events
from parley_shared.events import (
    DecodeError,
    Envelope,
    Media,
    MessageReceived,
    StatusUpdated,
    decode,
    encode,
    new_envelope,
)


def received(body: str = "hi") -> Envelope:
    payload = MessageReceived(
        message_sid="SM" + "a" * 32,
        account_sid="AC" + "b" * 32,
        channel="whatsapp",
        participant="whatsapp:+15550001",
        our_address="whatsapp:+15550002",
        body=body,
        media=(Media(url="https://api.twilio.com/m/1", content_type="image/jpeg"),),
        profile_name="Ada",
        wa_id="15550001",
        params={"Body": [body], "NewThing": ["x"]},
    )
    return new_envelope(
        payload,
        event_id=uuid.uuid4(),
        conversation_key="cv_1",
        account_sid=payload.account_sid,
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@given(body=st.text(max_size=300))
def test_round_trip_keeps_everything(body: str) -> None:
    event = received(body)
    assert decode(encode(event)) == event


def test_wire_names_are_explicit_not_class_paths() -> None:
    document = json.loads(encode(received()))
    assert document["event_type"] == "message.received"
    assert document["schema_version"] == 1
    assert "MessageReceived" not in json.dumps(document)
    assert document["payload"]["media"][0]["content_type"] == "image/jpeg"


def test_occurred_at_is_normalised_to_utc() -> None:
    event = received()
    later = event.model_copy(update={})
    document = json.loads(encode(later))
    document["occurred_at"] = datetime(
        2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))
    ).isoformat()
    assert decode(json.dumps(document).encode()).occurred_at == event.occurred_at
    assert decode(json.dumps(document).encode()).occurred_at.tzinfo == UTC


def test_tolerant_reader_ignores_unknown_fields() -> None:
    document = json.loads(encode(received()))
    document["added_by_newer_producer"] = {"x": 1}
    document["payload"]["sentiment"] = "happy"
    event = decode(json.dumps(document).encode())
    assert isinstance(event.payload, MessageReceived)
    assert event.payload.body == "hi"


def test_messages_logged_before_a_second_provider_are_twilios() -> None:
    document = json.loads(encode(received()))
    assert document["payload"].pop("provider") == "twilio"
    assert decode(json.dumps(document).encode()).payload.provider == "twilio"  # type: ignore[attr-defined]
    document["payload"]["provider"] = "Telnyx; DROP"
    with pytest.raises(DecodeError):
        decode(json.dumps(document).encode())


def test_events_are_frozen() -> None:
    event = received()
    with pytest.raises(ValueError, match="frozen"):
        event.payload.body = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(event_type="message.teleported"), "unknown event type"),
        (lambda d: d.update(schema_version=99), "newer than this reader"),
        (lambda d: d.update(schema_version="1"), "bad schema version"),
        (lambda d: d["payload"].pop("message_sid"), "invalid message.received"),
        (lambda d: d.update(payload=[1, 2]), "payload is not an object"),
        (lambda d: d.update(occurred_at="2026-01-01T00:00:00"), "invalid"),
    ],
)
def test_undecodable_events_say_why(mutate: Any, reason: str) -> None:
    document = json.loads(encode(received()))
    mutate(document)
    with pytest.raises(DecodeError, match=reason):
        decode(json.dumps(document).encode())


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"[]", b"null", b'{"event_type": 3}'])
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw)


def test_older_versions_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend status.updated is at v2, where v1's "code" became "error_code".
    class StatusV2(StatusUpdated):
        SCHEMA_VERSION = 2

    monkeypatch.setitem(events.PAYLOAD_TYPES, "status.updated", StatusV2)
    monkeypatch.setitem(
        events.UPCASTERS,
        ("status.updated", 1),
        lambda p: {**{k: v for k, v in p.items() if k != "code"}, "error_code": p.get("code")},
    )
    v1 = {
        "event_id": str(uuid.uuid4()),
        "event_type": "status.updated",
        "schema_version": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "conversation_key": "cv_1",
        "account_sid": "AC1",
        "correlation_id": str(uuid.uuid4()),
        "payload": {
            "message_sid": "SM1",
            "account_sid": "AC1",
            "status": "failed",
            "channel": "sms",
            "participant": "+1",
            "our_address": "+2",
            "code": 30003,
        },
    }
    event = decode(json.dumps(v1).encode())
    assert event.schema_version == 2
    assert isinstance(event.payload, StatusV2)
    assert event.payload.error_code == 30003
