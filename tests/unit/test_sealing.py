"""Sealing and opening one event's personal fields (pure: no keyring, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from parley_shared.events import (
    CallUpdated,
    ConversationChanged,
    EmailReceived,
    Envelope,
    HandoffChanged,
    Location,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    Payload,
    ReplyGenerated,
    StatusUpdated,
    decode,
    encode,
    new_envelope,
)
from parley_shared.sealing import ERASED, PERSONAL, new_key, opened, personal, seal

NUMBER = "whatsapp:+15550001234"
SUBJECT = uuid.UUID(int=7)
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def envelope(payload: Payload) -> Envelope:
    return new_envelope(
        payload,
        event_id=uuid.uuid4(),
        conversation_key="cv_1",
        account_sid="AC" + "b" * 32,
        occurred_at=AT,
    )


def every_personal_payload(body: str) -> list[Payload]:
    common: dict[str, Any] = {
        "channel": "whatsapp",
        "participant": NUMBER,
        "our_address": "whatsapp:+15550009999",
    }
    sid = "SM" + "a" * 32
    return [
        MessageReceived(
            **common,
            message_sid=sid,
            account_sid="AC1",
            body=body,
            media=(),
            profile_name="Ada Lovelace",
            wa_id="15550001234",
            location=Location(latitude=51.5, longitude=-0.1, label="Home of Ada"),
            params={"Body": [body], "From": [NUMBER]},
        ),
        StatusUpdated(
            **common,
            message_sid=sid,
            account_sid="AC1",
            status="delivered",
            params={"To": [NUMBER]},
        ),
        ReplyGenerated(
            **common,
            in_reply_to=uuid.uuid4(),
            inbound_message_sid=sid,
            inbound_at=AT,
            body=body,
            source="ai",
        ),
        MessageSent(
            **common,
            reply_event_id=uuid.uuid4(),
            body=body,
            status="failed",
            error_message=f"The 'To' number {NUMBER} is not valid",
        ),
        OutboundRequested(
            **common,
            conversation_id=uuid.uuid4(),
            body=body,
            media_urls=("https://example.net/ada.jpg",),
            content_variables={"1": "Ada Lovelace"},
            agent="sam",
        ),
        HandoffChanged(**common, conversation_id=uuid.uuid4(), action="taken_over", agent="sam"),
        ConversationChanged(**common, conversation_id=uuid.uuid4(), action="closed"),
        CallUpdated(
            call_sid="CA" + "c" * 32,
            account_sid="AC1",
            direction="inbound",
            participant=NUMBER,
            our_address="+15550009999",
            status="completed",
            outcome="completed",
            duration_s=12,
            params={"From": [NUMBER]},
        ),
        EmailReceived(
            message_id="<1@mail.example>",
            participant="ada@mail.example",
            our_address="help@shop.example",
            sender_name="Ada Lovelace",
            subject=f"Re: {body}",
            body=body,
            params={"from": ["Ada Lovelace <ada@mail.example>"], "headers": ["Home of Ada"]},
        ),
    ]


def test_every_personal_payload_type_is_covered() -> None:
    assert {type(p) for p in every_personal_payload("x")} == set(PERSONAL)


@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_sealed_on_the_wire_nothing_personal_shows_and_opening_gives_it_all_back(
    text: str,
) -> None:
    # Marked so it cannot turn up by chance in ids, times or base64.
    body = f"«{text}»"
    key = new_key()
    for payload in every_personal_payload(body):
        event = envelope(payload)
        wire = encode(seal(event, SUBJECT, key))
        for secret in ("5550001234", "Ada Lovelace", "Home of Ada", "ada.jpg"):
            assert secret.encode() not in wire
        if "body" in PERSONAL[type(payload)]:
            assert body.encode() not in wire
        sealed = decode(wire)
        assert sealed.sealed is not None and sealed.subject == SUBJECT
        assert not personal(sealed)
        assert opened(sealed, key) == event.model_copy(update={"subject": SUBJECT})


def test_without_the_key_every_personal_field_reads_erased_and_the_rest_stays() -> None:
    for payload in every_personal_payload("call me on 555"):
        event = envelope(payload)
        sealed = decode(encode(seal(event, SUBJECT, new_key())))
        for key in (None, new_key()):  # deleted, or not the one it was sealed with
            gone = opened(sealed, key)
            assert (gone.sealed, gone.subject) == (None, SUBJECT)
            assert gone.payload.participant == ERASED
            if "body" in PERSONAL[type(payload)]:
                assert gone.payload.body == ERASED
            kept = set(type(payload).model_fields) - set(PERSONAL[type(payload)])
            assert gone.payload.model_dump(include=kept) == payload.model_dump(include=kept)
            assert gone.event_id == event.event_id


def test_a_box_opens_only_on_its_own_event() -> None:
    key = new_key()
    first, second = (envelope(every_personal_payload(b)[0]) for b in ("first", "second"))
    moved = seal(second, SUBJECT, key).model_copy(
        update={"sealed": seal(first, SUBJECT, key).sealed}
    )
    assert opened(moved, key).payload.body == ERASED


def test_events_without_personal_fields_or_already_opened_pass_through() -> None:
    event = envelope(every_personal_payload("hi")[0])
    assert opened(event, None) == event  # never sealed (written before sealing existed)
    assert personal(event)
    assert not personal(seal(event, SUBJECT, new_key()))
