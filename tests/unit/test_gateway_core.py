from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley_gateway.core import InvalidWebhook, inbound_event, parse_form, status_event
from parley_shared.events import MessageReceived, StatusUpdated
from parley_shared.identity import inbound_event_id, status_event_id
from parley_shared.keywords import HUMAN, asks_human, keyword_in
from tests.helpers import ACCOUNT_SID, form, inbound_params

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def params_of(**overrides: str) -> dict[str, list[str]]:
    return parse_form(form(inbound_params(**overrides)).encode())


def test_sms_inbound_keeps_every_parameter() -> None:
    params = params_of(FromCity="SPRINGFIELD", BrandNewTwilioField="surprise")
    event = inbound_event(params, NOW)
    payload = event.payload
    assert isinstance(payload, MessageReceived)
    assert payload.channel == "sms"
    assert payload.body == "Hello there"
    assert payload.params["BrandNewTwilioField"] == ["surprise"]
    assert payload.params["FromCity"] == ["SPRINGFIELD"]
    assert event.event_id == inbound_event_id(payload.message_sid)
    assert event.occurred_at == NOW


def test_whatsapp_media_profile_and_location() -> None:
    params = params_of(
        From="whatsapp:+15551230001",
        To="whatsapp:+14155238886",
        ProfileName="Ada",
        WaId="15551230001",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/m/0",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/m/1",
        MediaContentType1="audio/ogg",
        MessageType="location",
        Latitude="51.5",
        Longitude="-0.12",
        Address="London",
        Label="Office",
        Body="",
    )
    payload = inbound_event(params, NOW).payload
    assert isinstance(payload, MessageReceived)
    assert payload.channel == "whatsapp"
    assert payload.profile_name == "Ada" and payload.wa_id == "15551230001"
    assert [m.content_type for m in payload.media] == ["image/jpeg", "audio/ogg"]
    assert payload.location is not None and payload.location.label == "Office"
    assert payload.location.latitude == 51.5


def test_same_conversation_key_for_inbound_and_its_status_callbacks() -> None:
    inbound = inbound_event(params_of(), NOW)
    status = status_event(
        parse_form(
            form(
                {
                    "MessageSid": "SM" + "f" * 32,
                    "AccountSid": ACCOUNT_SID,
                    "MessageStatus": "delivered",
                    "From": "+15557654321",
                    "To": "+15551230001",
                }
            ).encode()
        ),
        NOW,
    )
    assert status.conversation_key == inbound.conversation_key


def test_pool_number_keys_on_the_messaging_service() -> None:
    service = "MG" + "a" * 32
    one = inbound_event(params_of(To="+15550000001", MessagingServiceSid=service), NOW)
    other = inbound_event(params_of(To="+15550000002", MessagingServiceSid=service), NOW)
    assert one.conversation_key == other.conversation_key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"From": ""}, "missing required parameter From"),
        ({"AccountSid": "XX123"}, "not a Twilio SID"),
        ({"MessageSid": "nope"}, "not a Twilio SID"),
        # A Twilio SID is its prefix and 32 hex digits, nothing longer or else.
        ({"MessageSid": "SM" + "a" * 31}, "not a Twilio SID"),
        ({"MessageSid": "SM" + "a" * 33}, "not a Twilio SID"),
        ({"MessageSid": "SM" + "g" * 32}, "not a Twilio SID"),
        ({"MessageSid": "SMforgedbutalphanumeric1234567890xyz"}, "not a Twilio SID"),
        ({"AccountSid": "AC" + "1" * 31}, "not a Twilio SID"),
        ({"NumMedia": "two"}, "NumMedia must be an integer"),
        ({"NumMedia": "3"}, "MediaUrl0 is missing"),
        ({"NumMedia": "-1"}, "between 0 and 10"),
        ({"Latitude": "nan", "Longitude": "1"}, "finite"),
        ({"Latitude": "91", "Longitude": "1"}, "out of range"),
        ({"From": "whatsapp:+1555"}, "different channels"),
    ],
)
def test_malformed_inbound_is_refused_with_a_reason(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidWebhook, match=message):
        inbound_event(params_of(**overrides), NOW)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="UTF-8"):
        parse_form(b"Body=%FF%FE&From=x")
    with pytest.raises(InvalidWebhook, match="UTF-8"):
        parse_form(b"Body=\xff")


def test_status_event_id_is_per_status() -> None:
    sid = "SM" + "c" * 32
    base = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": "+1555", "To": "+1666"}
    sent = status_event(parse_form(form({**base, "MessageStatus": "sent"}).encode()), NOW)
    failed = status_event(
        parse_form(form({**base, "MessageStatus": "failed", "ErrorCode": "30003"}).encode()), NOW
    )
    assert sent.event_id == status_event_id(sid, "sent")
    assert failed.event_id != sent.event_id
    assert isinstance(failed.payload, StatusUpdated) and failed.payload.error_code == 30003
    with pytest.raises(InvalidWebhook, match="MessageStatus"):
        status_event(parse_form(form({**base, "MessageStatus": "<x>"}).encode()), NOW)


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("Stop.", "opt_out"),
        ("start", "opt_in"),
        ("HELP!", "help"),
        ("human please", "none"),
        ("Agent", "human"),
        ("Mensch", "human"),  # a word HANDOFF_KEYWORDS adds
        ("What time do you open?", "none"),
        ("", "none"),
    ],
)
def test_the_gateway_decides_what_a_message_asks_for(body: str, intent: str) -> None:
    payload = inbound_event(params_of(Body=body), NOW, HUMAN | {"MENSCH"}).payload
    assert isinstance(payload, MessageReceived)
    assert payload.intent == intent


def test_readers_follow_the_decision_on_the_log_and_the_body_only_without_one() -> None:
    decided = inbound_event(params_of(Body="Mensch"), NOW, HUMAN | {"MENSCH"}).payload
    assert isinstance(decided, MessageReceived)
    # A reader configured otherwise (or a rebuild after the body was erased) reads the same.
    erased = decided.model_copy(update={"body": "[erased]"})
    assert asks_human(erased) and asks_human(decided, frozenset())
    stop = inbound_event(params_of(Body="STOP"), NOW).payload
    assert isinstance(stop, MessageReceived)
    assert keyword_in(stop.model_copy(update={"body": "[erased]"})) == "opt_out"
    # Logged before the gateway decided: the body decides.
    legacy = stop.model_copy(update={"intent": None})
    assert keyword_in(legacy) == "opt_out"
    assert asks_human(decided.model_copy(update={"intent": None}), HUMAN | {"MENSCH"})
    assert not asks_human(decided.model_copy(update={"intent": None}))
