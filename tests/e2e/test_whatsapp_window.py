"""WhatsApp's 24-hour window: free-form text only within a day of the participant's last
message, approved templates otherwise; Twilio's 63016 is the last word."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.conftest import BOT_WHATSAPP, Parley, eventually
from tests.e2e.test_handoff import conversation_of
from tests.e2e.test_loop import replies_to

TEMPLATE = "HX" + "a1" * 16
WITH_TEMPLATE = {"templates": {BOT_WHATSAPP: {"content_sid": TEMPLATE, "body_variable": "1"}}}


async def last_message(parley: Parley, number: str, status: str) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        history = await parley.history_of(number)
        return history[-1] if history[-1]["status"] == status else None

    return await eventually(settled)


@pytest.mark.parametrize("parley", [WITH_TEMPLATE], indirect=True)
async def test_twilio_63016_sends_the_numbers_template_instead(parley: Parley) -> None:
    number = "whatsapp:+15550130001"
    parley.twilio.window_closed.add(number)  # Twilio says so, whatever Parley thinks
    await parley.text(number, "hello again")
    [sent] = await replies_to(parley, number, 1)
    assert sent.content_sid == TEMPLATE
    assert sent.body == f"[template {TEMPLATE}] {{{{1}}}}=AI says: hello again"
    reply = await last_message(parley, number, "delivered")
    assert (reply["content_sid"], reply["message_sid"]) == (TEMPLATE, sent.sid)


async def test_outside_the_window_without_a_template_nothing_is_sent(parley: Parley) -> None:
    number = "whatsapp:+15550130002"
    parley.twilio.window_closed.add(number)
    await parley.text(number, "hello again")
    reply = await last_message(parley, number, "failed")
    assert (reply["error_code"], reply["message_sid"]) == (63016, None)
    assert parley.twilio.for_number(number) == []


@pytest.mark.parametrize("parley", [{**WITH_TEMPLATE, "whatsapp_window_s": 1.5}], indirect=True)
async def test_a_reply_written_after_the_window_closed_goes_as_the_template(
    parley: Parley,
) -> None:
    number = "whatsapp:+15550130003"
    parley.openai.delays = {"slow": 2.5}  # the window closes while the model thinks
    await parley.text(number, "slow answer please")
    [sent] = await replies_to(parley, number, 1)
    assert sent.content_sid == TEMPLATE
    assert parley.twilio.create_calls == 1  # decided before calling Twilio, not after a 63016


# Long enough for the first exchange even on a loaded machine; the test then waits it out.
@pytest.mark.parametrize("parley", [{"whatsapp_window_s": 5.0}], indirect=True)
async def test_operators_need_a_template_once_the_window_closed(parley: Parley) -> None:
    number = "whatsapp:+15550130004"
    await parley.text(number, "hi")
    await replies_to(parley, number, 1)
    conversation = await conversation_of(parley, number)
    assert conversation["whatsapp_window_closes_at"] is not None
    path = f"/v1/conversations/{conversation['id']}/messages"
    inside = await parley.conversation.post(path, json={"agent": "Ana", "body": "quick one"})
    assert inside.status_code == 202, inside.text
    await replies_to(parley, number, 2)
    closes = datetime.fromisoformat(conversation["whatsapp_window_closes_at"])
    await asyncio.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.2)

    late = await parley.conversation.post(path, json={"agent": "Ana", "body": "still there?"})
    assert late.status_code == 409
    assert "template" in late.json()["detail"]
    template = {"content_sid": TEMPLATE, "variables": {"1": "Ana", "2": "your order"}}
    accepted = await parley.conversation.post(path, json={"agent": "Ana", "template": template})
    assert accepted.status_code == 202, accepted.text
    sent = await replies_to(parley, number, 3)
    assert sent[2].content_sid == TEMPLATE
    assert sent[2].body == f"[template {TEMPLATE}] {{{{1}}}}=Ana {{{{2}}}}=your order"
    bad = await parley.conversation.post(
        path, json={"agent": "Ana", "template": {"content_sid": "not-a-sid"}}
    )
    assert bad.status_code == 422


async def test_sms_has_no_window(parley: Parley) -> None:
    number = "+15550130005"
    await parley.text(number, "hi")
    await replies_to(parley, number, 1)
    assert (await conversation_of(parley, number))["whatsapp_window_closes_at"] is None
