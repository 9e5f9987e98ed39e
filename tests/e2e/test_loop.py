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
