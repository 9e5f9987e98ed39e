"""The gateway's calls and emails: Twilio's voice status callbacks and signed Inbound Parse
posts into ``call.updated`` and ``email.received`` events, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from parley_dev.email_sandbox import Email, EmailSandbox
from parley_gateway.core import InvalidWebhook, call_event, outcome_of
from parley_gateway.email_core import email_event, parse_multipart, text_of_html
from parley_gateway.email_provider import verification_key
from parley_shared.events import CallUpdated, EmailReceived
from parley_shared.identity import conversation_key
from parley_shared.memory import InMemoryBus
from tests.helpers import form, signed
from tests.unit.test_gateway_http import PUBLIC, gateway

ACCOUNT = "AC" + "1" * 32
CALL = "CA" + "2" * 32
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
VOICE = "/webhooks/twilio/voice"
EMAIL = "/webhooks/email/inbound"


def call_params(**changes: str) -> dict[str, str]:
    params = {
        "CallSid": CALL,
        "AccountSid": ACCOUNT,
        "From": "+15550001111",
        "To": "+15557654321",
        "Direction": "inbound",
        "CallStatus": "completed",
        "CallDuration": "31",
    }
    return {**params, **changes}


def as_params(params: dict[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in params.items()}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("ringing", "started"),
        ("in-progress", "started"),
        ("completed", "completed"),
        ("no-answer", "missed"),
        ("busy", "missed"),
        ("canceled", "missed"),
        ("failed", "missed"),
        ("some-new-status", "started"),
    ],
)
def test_a_call_status_means_an_outcome(status: str, outcome: str) -> None:
    assert outcome_of(status) == outcome


def test_a_call_joins_the_sms_thread_of_its_numbers_whichever_way_it_went() -> None:
    inbound = call_event(as_params(call_params()), NOW)
    outbound = call_event(
        as_params(call_params(Direction="outbound-api", From="+15557654321", To="+15550001111")),
        NOW,
    )
    sms_thread = conversation_key(
        account_sid=ACCOUNT, our_endpoint="+15557654321", participant="+15550001111", channel="sms"
    )
    assert inbound.conversation_key == outbound.conversation_key == sms_thread
    p = inbound.payload
    assert isinstance(p, CallUpdated)
    assert (p.participant, p.our_address, p.outcome, p.duration_s) == (
        "+15550001111",
        "+15557654321",
        "completed",
        31,
    )
    assert isinstance(outbound.payload, CallUpdated)
    assert outbound.payload.direction == "outbound"
    # One event per call and status: a retried callback is the same event.
    assert call_event(as_params(call_params()), NOW).event_id == inbound.event_id
    ringing = call_event(as_params(call_params(CallStatus="ringing")), NOW)
    assert ringing.event_id != inbound.event_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"CallSid": "SM" + "2" * 32}, "not a Twilio SID"),
        ({"CallStatus": "ringing; drop"}, "is not a status"),
        ({"CallDuration": "-3"}, "must not be negative"),
        ({"CallDuration": "long"}, "must be an integer"),
        ({"From": "whatsapp:+15550001111"}, "phone numbers"),
        ({"Direction": ""}, "missing required parameter Direction"),
    ],
)
def test_a_bad_call_callback_says_why(changes: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidWebhook, match=message):
        call_event(as_params(call_params(**changes)), NOW)


async def test_a_signed_call_callback_is_published_and_an_unsigned_one_refused() -> None:
    bus = InMemoryBus()
    params = call_params()
    async with gateway(bus) as http:
        response = await http.post(
            VOICE, content=form(params), headers=signed(PUBLIC + VOICE, params)
        )
        assert response.status_code == 200, response.text
        refused = await http.post(
            VOICE,
            content=form(params),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert refused.status_code == 403
        bad = call_params(CallSid="nope")
        malformed = await http.post(VOICE, content=form(bad), headers=signed(PUBLIC + VOICE, bad))
        assert malformed.status_code == 400 and "CallSid" in malformed.json()["detail"]
    [event] = bus.events("call.updated")
    assert event.event_id == call_event(as_params(params), NOW).event_id


def fields_of(**changes: Any) -> tuple[dict[str, list[str]], int]:
    email = Email(
        "Jane <Jane@Mail.Example>",
        "Support <support@shop.example>",
        "Order 42",
        "Where is it?",
        message_id="<m1@mail.example>",
        **changes,
    )
    body, content_type = EmailSandbox.form(email)
    return parse_multipart(content_type, body)


def test_an_email_post_becomes_an_event_of_its_sender_and_our_address() -> None:
    fields, files = fields_of(attachments={"a.pdf": b"%PDF\x00", "b.png": b"\x89PNG"})
    assert files == 2
    event = email_event(fields, files, NOW)
    p = event.payload
    assert isinstance(p, EmailReceived)
    assert (p.participant, p.our_address, p.sender_name) == (
        "jane@mail.example",
        "support@shop.example",
        "Jane",
    )
    assert (p.subject, p.body, p.attachments, p.message_id) == (
        "Order 42",
        "Where is it?",
        2,
        "<m1@mail.example>",
    )
    # The same Message-ID is the same event: a retried post counts once.
    assert email_event(*fields_of(), NOW).event_id == event.event_id


def test_an_email_without_text_reads_its_html_and_one_without_id_is_named_by_its_content() -> None:
    fields, _ = fields_of()
    fields["text"] = [""]
    fields["html"] = ["<p>Hello <b>there</b></p><script></script>"]
    fields["headers"] = ["Subject: x\n"]
    event = email_event(fields, 0, NOW)
    assert isinstance(event.payload, EmailReceived)
    assert event.payload.body == "Hello there"
    assert event.payload.message_id.startswith("<sha256:")
    assert email_event(fields, 0, NOW).event_id == event.event_id
    assert text_of_html("<div>a</div>\n\n\n<div>b</div>") == "a\n\nb"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("envelope", "{not json", "envelope is not JSON"),
        ("envelope", '{"from": "not an address", "to": ["a@b.c"]}', "not an email address"),
        ("envelope", '{"from": "x@y.z", "to": "a@b.c"}', "a 'to' list"),
    ],
)
def test_a_bad_email_post_says_why(field: str, value: str, message: str) -> None:
    fields, _ = fields_of()
    fields[field] = [value]
    with pytest.raises(InvalidWebhook, match=message):
        email_event(fields, 0, NOW)


def test_an_email_post_that_is_no_form_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="multipart"):
        parse_multipart("multipart/form-data", b"just text")
    with pytest.raises(InvalidWebhook, match="UTF-8"):
        parse_multipart(
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe\r\n--b--\r\n',
        )


async def test_the_email_webhook_checks_its_signature_and_is_off_unless_configured() -> None:
    sandbox = EmailSandbox()
    body, content_type = sandbox.form(Email("a@mail.example", "help@shop.example", "Hi", "Hello"))
    bus = InMemoryBus()
    async with gateway(bus) as http:
        off = await http.post(EMAIL, content=body, headers={"content-type": content_type})
        assert off.status_code == 404 and "EMAIL_WEBHOOK_PUBLIC_KEY" in off.json()["detail"]
    other = EmailSandbox()
    async with gateway(bus, email_webhook_public_key=sandbox.public_key) as http:
        headers = {"content-type": content_type}
        wrong_key = await http.post(EMAIL, content=body, headers={**headers, **other.signed(body)})
        assert wrong_key.status_code == 403
        taken = await http.post(EMAIL, content=body, headers={**headers, **sandbox.signed(body)})
        assert taken.status_code == 200, taken.text
    [event] = bus.events("email.received")
    assert isinstance(event.payload, EmailReceived)
    assert event.payload.participant == "a@mail.example"


def test_a_gateway_with_a_key_that_is_no_key_does_not_start() -> None:
    with pytest.raises(ValueError, match="public key"):
        verification_key("bm90IGEga2V5")
