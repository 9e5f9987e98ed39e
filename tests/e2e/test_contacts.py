"""Calls and emails beside the messages: a participant's calls (Twilio's voice status
callbacks) join their SMS thread as one entry per call, emails (Inbound Parse posts, signed)
open threads of their own; both show in the history and are counted in analytics per channel,
and no one answers them."""

from __future__ import annotations

from typing import Any

from parley_dev.carrier import call_in
from parley_dev.email_sandbox import Email
from tests.e2e.conftest import BOT_SMS, PUBLIC, Parley, eventually

THEM = "+15550177001"
SUPPORT = "support@shop.example"


async def contacts(parley: Parley, **params: str) -> dict[str, dict[str, Any]]:
    response = await parley.analytics.get("/v1/contacts", params=params)
    assert response.status_code == 200, response.text
    return {row["channel"]: row for row in response.json()["channels"]}


async def test_calls_join_the_callers_thread_and_are_counted(parley: Parley) -> None:
    await parley.text(THEM, "Can I call you about my order?")

    async def answered() -> list[dict[str, Any]] | None:
        history = await parley.history_of(THEM)
        return history if [m["direction"] for m in history] == ["inbound", "outbound"] else None

    await eventually(answered)
    assert (
        await call_in(parley.twilio, THEM, BOT_SMS, PUBLIC, how="answered", seconds=65)
        == [True] * 3
    )
    assert await call_in(parley.twilio, THEM, BOT_SMS, PUBLIC, how="missed") == [True, True]

    async def calls() -> list[dict[str, Any]] | None:
        history = await parley.history_of(THEM)
        done = [m for m in history if m["kind"] == "call" and m["call"]["outcome"] != "started"]
        return history if len(done) == 2 else None

    history = await eventually(calls)
    assert [(m["kind"], m["direction"]) for m in history] == [
        ("message", "inbound"),
        ("message", "outbound"),
        ("call", "inbound"),
        ("call", "inbound"),
    ]
    answered_call, missed_call = history[2:]
    assert answered_call["call"] == {"outcome": "completed", "duration_s": 65, "provider": "twilio"}
    assert answered_call["status"] == "completed" and answered_call["message_sid"].startswith("CA")
    assert missed_call["call"]["outcome"] == "missed" and missed_call["status"] == "no-answer"
    # One thread, one conversation: the calls are in the texts' conversation, and are not
    # counted as its messages.
    [conversation] = await parley.conversations_of(THEM)
    assert (conversation["messages_in"], conversation["messages_out"]) == (1, 1)
    assert (conversation["calls"], conversation["emails"]) == (2, 0)

    async def counted() -> dict[str, Any] | None:
        voice = (await contacts(parley)).get("voice")
        return voice if voice and voice["completed"] + voice["missed"] == 2 else None

    voice = await counted() or await eventually(counted)
    assert voice == {
        "channel": "voice",
        "total": 2,
        "inbound": 2,
        "outbound": 0,
        "completed": 1,
        "missed": 1,
        "in_progress": 0,
        "talk_seconds": 65,
    }
    assert (await contacts(parley, our_number="+15550000000")) == {}
    # Only the text was answered: calls get no reply.
    assert len(parley.twilio.for_number(THEM)) == 1


async def test_a_retried_call_callback_counts_once(parley: Parley) -> None:
    sid = "CA" + "ab" * 16
    for _ in range(2):  # Twilio retried the callback: the same event, applied once
        assert await call_in(parley.twilio, THEM, BOT_SMS, PUBLIC, how="busy", sid=sid) == [True]
    assert await call_in(parley.twilio, "+15550177002", BOT_SMS, PUBLIC, how="busy") == [True]

    async def counted() -> dict[str, Any] | None:
        voice = (await contacts(parley)).get("voice")
        return voice if voice and voice["missed"] == 2 else None

    voice = await eventually(counted)
    assert (voice["total"], voice["completed"]) == (2, 0)


async def test_an_email_opens_a_thread_shown_and_counted(parley: Parley) -> None:
    url = parley.gateway + "/webhooks/email/inbound"
    email = Email(
        "Jane Doe <Jane.Doe@mail.example>",
        SUPPORT,
        "Order 42",
        "Where is my order?",
        message_id="<order-42@mail.example>",
        attachments={"receipt.pdf": b"%PDF-1.4 \x00\xff"},
    )
    for _ in range(2):  # the service retried its post: one email
        response = await parley.email.post(url, email)
        assert response.status_code == 200, response.text

    async def thread() -> list[dict[str, Any]] | None:
        found = await parley.conversations_of("jane.doe@mail.example")
        return found or None

    [conversation] = await eventually(thread)
    assert (conversation["channel"], conversation["our_address"]) == ("email", SUPPORT)
    assert conversation["provider"] == "sendgrid"
    assert (conversation["messages_in"], conversation["emails"]) == (0, 1)
    [entry] = await parley.history_of("jane.doe@mail.example")
    assert (entry["kind"], entry["direction"], entry["body"]) == (
        "email",
        "inbound",
        "Where is my order?",
    )
    assert entry["email"] == {"subject": "Order 42", "sender_name": "Jane Doe", "attachments": 1}

    async def counted() -> dict[str, Any] | None:
        return (await contacts(parley)).get("email")

    figures = await eventually(counted)
    assert (figures["total"], figures["inbound"]) == (1, 1)
    # No one answers an email.
    assert all("Where is my order?" not in str(r) for r in parley.openai.requests)


async def test_an_email_post_must_be_signed(parley: Parley) -> None:
    url = parley.gateway + "/webhooks/email/inbound"
    body, content_type = parley.email.form(Email("a@mail.example", SUPPORT, "Hi", "Hello"))
    headers = {"content-type": content_type, **parley.email.signed(body)}
    tampered = body.replace(b"Hello", b"Hallo")
    stale = {"content-type": content_type, **parley.email.signed(body, timestamp=1_600_000_000)}
    cases = [
        (tampered, headers, 403),
        (body, {"content-type": content_type}, 403),
        (body, stale, 403),
        (body, {**headers, "content-type": "application/json"}, 415),
    ]
    for content, sent_headers, expected in cases:
        response = await parley.http.post(url, content=content, headers=sent_headers)
        assert response.status_code == expected, (expected, response.text)
    unreadable = b"--x\r\nnot a part\r\n--x--\r\n"
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    response = await parley.http.post(
        url, content=unreadable, headers={**multipart, **parley.email.signed(unreadable)}
    )
    assert response.status_code == 400, response.text


async def test_an_email_sender_can_be_erased(parley: Parley) -> None:
    email = Email("Ann Example <Ann@Mail.Example>", SUPPORT, "My address", "I live at 1 Main St")
    response = await parley.email.post(parley.gateway + "/webhooks/email/inbound", email)
    assert response.status_code == 200, response.text
    [conversation] = await eventually(lambda: parley.conversations_of("ann@mail.example"))
    erased = await parley.api(
        "/v1/participants/erase", "POST", json={"participant": "ANN@mail.example"}
    )
    assert len(erased["subjects"]) == 1

    async def forgotten() -> dict[str, Any] | None:
        page = await parley.api(f"/v1/conversations/{conversation['id']}/messages")
        [entry] = page["items"]
        return entry if entry["body"] == "[erased]" else None

    entry = await eventually(forgotten)
    assert entry["email"] == {"subject": "[erased]", "sender_name": None, "attachments": 0}
    assert (await parley.api(f"/v1/conversations/{conversation['id']}"))["participant"] == (
        "[erased]"
    )
