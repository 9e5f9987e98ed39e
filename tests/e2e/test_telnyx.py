"""A Telnyx number's messages through the whole loop, against the Telnyx sandbox: the gateway
checks Telnyx's signature and logs them like Twilio's, marked with their provider; the model
answers; the sender sends the reply through Telnyx (never Twilio) with the reply's
Idempotency-Key, and Telnyx's status webhooks move it to delivered. A sender without Telnyx
credentials records such replies as not sent, with why."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Parley, eventually

OURS = "+15550009999"
THEM = "+15550188777"


async def delivered(parley: Parley, count: int) -> list[dict[str, Any]] | None:
    history = await parley.history_of(THEM)
    done = [m for m in history if m["direction"] == "outbound" and m["status"] == "delivered"]
    return history if len(done) == count else None


async def test_a_telnyx_message_is_answered_through_telnyx(parley: Parley) -> None:
    assert await parley.telnyx.text(THEM, OURS, "Do you open on Sundays?") == 200

    history = await eventually(lambda: delivered(parley, 1))
    assert [(m["direction"], m["body"]) for m in history] == [
        ("inbound", "Do you open on Sundays?"),
        ("outbound", "AI says: Do you open on Sundays?"),
    ]
    [conversation] = await parley.conversations_of(THEM)
    assert (conversation["provider"], conversation["our_address"]) == ("telnyx", OURS)
    [sent] = parley.telnyx.sent
    assert (sent["from"]["phone_number"], sent["to"][0]["phone_number"]) == (OURS, THEM)
    assert sent["id"] == history[1]["message_sid"]
    assert all(m.to != THEM for m in parley.twilio.sent)

    # An operator's message in the Telnyx conversation goes through Telnyx too.
    response = await parley.conversation.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"agent": "Ana", "body": "Yes!"}
    )
    assert response.status_code == 202, response.text
    history = await eventually(lambda: delivered(parley, 2))
    assert history[-1]["body"] == "Yes!"
    assert len(parley.telnyx.sent) == 2 and all(m.to != THEM for m in parley.twilio.sent)

    async def counted() -> bool | None:
        stats = (await parley.analytics.get("/v1/stats")).json()
        return stats["messages"]["inbound"] == 1 or None

    await eventually(counted)


@pytest.mark.parametrize("parley", [{"telnyx_sender": False}], indirect=True)
async def test_without_telnyx_credentials_nothing_goes_through_twilio(parley: Parley) -> None:
    message = {
        "id": str(uuid.uuid4()),
        "organization_id": parley.telnyx.organization_id,
        "from": {"phone_number": THEM},
        "to": [{"phone_number": OURS}],
        "text": "hello?",
    }
    gateway = parley.gateway + "/webhooks/telnyx/messages"
    for _ in range(2):  # Telnyx retried: one message
        assert await parley.telnyx.post(gateway, "message.received", message) == 200

    async def canceled() -> list[dict[str, Any]] | None:
        history = await parley.history_of(THEM)
        return history if len(history) == 2 and history[1]["status"] == "canceled" else None

    await eventually(canceled)
    assert parley.telnyx.sent == [] and all(m.to != THEM for m in parley.twilio.sent)
