"""An inbound message gets exactly one AI reply, sent through Twilio and tracked."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import BOT_SMS, Parley, eventually


async def test_sms_gets_one_ai_reply_and_history_shows_both(parley: Parley) -> None:
    await parley.text("+15550100001", "What are your opening hours?")

    async def delivered() -> list[dict[str, Any]] | None:
        history = await parley.history_of("+15550100001")
        if len(history) == 2 and history[1]["status"] == "delivered":
            return history
        return None

    history = await eventually(delivered)
    inbound, outbound = history
    assert (inbound["direction"], inbound["body"]) == ("inbound", "What are your opening hours?")
    assert outbound["direction"] == "outbound"
    assert outbound["body"] == "AI says: What are your opening hours?"
    assert outbound["ai"]["source"] == "ai"
    assert [s["status"] for s in outbound["status_history"]] == ["sent", "delivered"]
    [sent] = parley.twilio.for_number("+15550100001")
    assert sent.body == outbound["body"]
    assert sent.from_ == BOT_SMS
    assert outbound["message_sid"] == sent.sid


async def replies_to(parley: Parley, number: str, count: int) -> list[Any]:
    async def enough() -> list[Any] | None:
        sent = parley.twilio.for_number(number)
        return sent if len(sent) >= count else None

    return await eventually(enough)


async def test_whatsapp_message_is_answered_on_whatsapp(parley: Parley) -> None:
    await parley.text(
        "whatsapp:+15550100002",
        "Hola, do you ship to Spain?",
        ProfileName="Lucía",
        WaId="15550100002",
    )
    [sent] = await replies_to(parley, "whatsapp:+15550100002", 1)
    assert sent.from_ == "whatsapp:+14155238886"
    assert sent.body == "AI says: Hola, do you ship to Spain?"
    [conversation] = await parley.conversations_of("whatsapp:+15550100002")
    assert conversation["channel"] == "whatsapp"
    assert conversation["profile_name"] == "Lucía"


async def test_a_repeated_webhook_still_gets_one_reply(parley: Parley) -> None:
    params = await parley.text("+15550100003", "Hello?")
    await parley.post_inbound(params)
    await parley.post_inbound(params)
    await replies_to(parley, "+15550100003", 1)
    await parley.text("+15550100003", "Still there?")
    sent = await replies_to(parley, "+15550100003", 2)
    assert [m.body for m in sent] == ["AI says: Hello?", "AI says: Still there?"]
    assert len(parley.openai.requests) == 2
    # The second question is asked with the first exchange before it, as chat turns.
    second = parley.openai.requests[1]
    assert [(m["role"], m["content"]) for m in second["messages"][1:]] == [
        ("user", "Hello?"),
        ("assistant", "AI says: Hello?"),
        ("user", "Still there?"),
    ]
    assert second["messages"][0]["role"] == "system"
    assert isinstance(second["model"], str) and second["max_tokens"] > 0
    history = await parley.history_of("+15550100003")
    assert [m["direction"] for m in history] == ["inbound", "outbound"] * 2


async def test_openai_failing_is_retried_then_a_fallback_is_sent(parley: Parley) -> None:
    parley.openai.failures = [(500, None)] * 3  # the first call and both retries
    await parley.text("+15550100004", "Are you there?")
    [sent] = await replies_to(parley, "+15550100004", 1)
    assert sent.body.startswith("Sorry, we can't answer right now")
    assert len(parley.openai.requests) == 3

    async def recorded() -> list[dict[str, Any]] | None:
        history = await parley.history_of("+15550100004")
        return history if len(history) == 2 else None

    history = await eventually(recorded)
    assert history[1]["ai"]["source"] == "fallback"


async def test_openai_429_with_retry_after_is_retried_and_answered(parley: Parley) -> None:
    parley.openai.failures = [(429, 0.2)]
    await parley.text("+15550100014", "Busy?")
    [sent] = await replies_to(parley, "+15550100014", 1)
    assert sent.body == "AI says: Busy?"
    assert len(parley.openai.requests) == 2


async def test_twilio_429_once_still_sends_exactly_one_message(parley: Parley) -> None:
    from parley_dev.sandbox import Fault

    parley.twilio.faults = [Fault(429, 20429, "Too Many Requests")]
    await parley.text("+15550100005", "Ping")
    [sent] = await replies_to(parley, "+15550100005", 1)
    assert parley.twilio.create_calls == 2
    await eventually(lambda: _status_is(parley, "+15550100005", "delivered"))
    assert sent.body == "AI says: Ping"


async def test_permanent_twilio_error_is_recorded_not_retried(parley: Parley) -> None:
    from parley_dev.sandbox import Fault

    parley.twilio.faults = [Fault(400, 21211, "The 'To' number is not a valid phone number.")]
    await parley.text("+15550100006", "Hi")

    async def failed() -> dict[str, Any] | None:
        history = await parley.history_of("+15550100006")
        return history[1] if len(history) == 2 and history[1]["status"] == "failed" else None

    outbound = await eventually(failed)
    assert outbound["error_code"] == 21211
    assert parley.twilio.create_calls == 1


async def _status_is(parley: Parley, number: str, status: str) -> bool:
    history = await parley.history_of(number)
    return len(history) >= 2 and history[-1]["status"] == status


async def test_stop_means_no_reply_and_no_sends_until_start(parley: Parley) -> None:
    number = "+15550100007"
    await parley.text(number, "hello")
    await replies_to(parley, number, 1)
    await parley.text(number, " stop ")

    async def opted_out() -> bool:
        return bool((await parley.conversations_of(number))[0]["opted_out"])

    await eventually(opted_out)
    await parley.text(number, "what about now?")
    await parley.text(number, "START")
    await parley.text(number, "back again")
    sent = await replies_to(parley, number, 2)
    assert [m.body for m in sent] == ["AI says: hello", "AI says: back again"]

    async def complete() -> list[dict[str, Any]] | None:
        history = await parley.history_of(number)
        return history if len(history) == 7 else None

    history = await eventually(complete)
    assert [(m["direction"], m["body"]) for m in history] == [
        ("inbound", "hello"),
        ("outbound", "AI says: hello"),
        ("inbound", " stop "),
        ("inbound", "what about now?"),
        ("inbound", "START"),
        ("inbound", "back again"),
        ("outbound", "AI says: back again"),
    ]
    # Twilio answers the keywords itself, and no model call is paid for an opted-out person.
    asked = [m["content"] for r in parley.openai.requests for m in r["messages"]]
    assert not any(text.strip().upper() in ("STOP", "START") for text in asked)
    answered = [r["messages"][-1]["content"] for r in parley.openai.requests]
    assert answered == ["hello", "back again"]


async def test_shuffled_and_repeated_status_callbacks_end_in_the_right_status(
    parley: Parley,
) -> None:
    parley.twilio.lifecycle = []  # this test plays Twilio's callbacks itself
    number = "+15550100008"
    await parley.text(number, "Track me")
    [sent] = await replies_to(parley, number, 1)
    for status in ["delivered", "sent", "sending", "delivered", "queued", "sent", "sending"]:
        await parley.status(sent.sid, number, status)

    async def settled() -> dict[str, Any] | None:
        history = await parley.history_of(number)
        if len(history) < 2:
            return None  # the projection has not caught up with the reply yet
        outbound = history[1]
        return outbound if len(outbound["status_history"]) == 4 else None

    outbound = await eventually(settled)
    assert outbound["status"] == "delivered"
    assert sorted(s["status"] for s in outbound["status_history"]) == [
        "delivered",
        "queued",
        "sending",
        "sent",
    ]


async def test_whatsapp_read_after_delivered_and_failed_stays_failed(parley: Parley) -> None:
    parley.twilio.lifecycle = []
    await parley.text("whatsapp:+15550100009", "one")
    [sent] = await replies_to(parley, "whatsapp:+15550100009", 1)
    for status in ["sent", "delivered", "read", "sent"]:
        await parley.status(sent.sid, "whatsapp:+15550100009", status)
    await eventually(lambda: _status_is(parley, "whatsapp:+15550100009", "read"))

    await parley.text("+15550100010", "two")
    [sms] = await replies_to(parley, "+15550100010", 1)
    await parley.status(sms.sid, "+15550100010", "undelivered", ErrorCode="30003")
    await parley.status(sms.sid, "+15550100010", "sent")
    await parley.status(sms.sid, "+15550100010", "delivered")

    async def final() -> dict[str, Any] | None:
        history = await parley.history_of("+15550100010")
        if len(history) < 2:
            return None
        outbound = history[1]
        return outbound if len(outbound["status_history"]) == 3 else None

    outbound = await eventually(final)
    assert (outbound["status"], outbound["error_code"]) == ("undelivered", 30003)


async def test_closed_conversation_gets_no_reply_and_next_message_opens_a_new_one(
    parley: Parley,
) -> None:
    number = "+15550100011"
    await parley.text(number, "first conversation")
    await replies_to(parley, number, 1)
    [first] = await parley.conversations_of(number)
    closed = await parley.api(f"/v1/conversations/{first['id']}/close", method="POST")
    assert closed["state"] == "closed"
    again = await parley.conversation.post(f"/v1/conversations/{first['id']}/close")
    assert again.status_code == 409

    await parley.text(number, "second conversation")
    sent = await replies_to(parley, number, 2)
    assert sent[-1].body == "AI says: second conversation"

    async def both() -> list[dict[str, Any]] | None:
        conversations = await parley.conversations_of(number)
        complete = len(conversations) == 2 and conversations[0]["messages_out"] == 1
        return conversations if complete else None

    newest, oldest = await eventually(both)
    assert oldest["id"] == first["id"]
    assert (oldest["state"], oldest["messages_in"], oldest["messages_out"]) == ("closed", 1, 1)
    assert (newest["state"], newest["messages_in"]) == ("open", 1)
    # The new conversation starts with a clean context.
    assert [m["role"] for m in parley.openai.requests[-1]["messages"]] == ["system", "user"]
    # The older one cannot be reopened over the newer one.
    refused = await parley.conversation.post(f"/v1/conversations/{first['id']}/reopen")
    assert refused.status_code == 409


async def test_a_message_sent_before_the_close_is_not_answered_after_it(parley: Parley) -> None:
    number = "+15550100015"
    parley.openai.delays = {"slow": 2.0}
    await parley.text(number, "slow one")
    await replies_to(parley, number, 1)
    [conversation] = await parley.conversations_of(number)
    await parley.text(number, "slow two")  # in flight while the operator closes
    await parley.api(f"/v1/conversations/{conversation['id']}/close", method="POST")
    reopened = await parley.api(f"/v1/conversations/{conversation['id']}/reopen", method="POST")
    assert reopened["state"] == "open"
    await replies_to(parley, number, 2)


async def test_second_reply_carries_the_first_exchange_as_context(parley: Parley) -> None:
    number = "+15550100012"
    await parley.text(number, "My name is Ada.")
    await replies_to(parley, number, 1)
    await parley.text(number, "What is my name?")
    await replies_to(parley, number, 2)
    messages = parley.openai.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "My name is Ada."),
        ("assistant", "AI says: My name is Ada."),
        ("user", "What is my name?"),
    ]
    assert messages[0]["role"] == "system"


async def test_a_slow_conversation_does_not_hold_up_another(parley: Parley) -> None:
    parley.openai.delays = {"slow": 4.0}
    await parley.text("+15550100013", "slow question")
    await parley.text("+15550100016", "quick question")
    await replies_to(parley, "+15550100016", 1)
    assert parley.twilio.for_number("+15550100013") == []  # still thinking
    await replies_to(parley, "+15550100013", 1)
