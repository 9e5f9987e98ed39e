"""A Telnyx number's messages through the whole loop: the gateway checks Telnyx's signature and
logs them like Twilio's, marked with their provider; the conversation, the model's answer and
the analytics follow as for any message. Nothing is sent through Twilio from a Telnyx number:
until the sender has a Telnyx adapter, its replies and operators' messages are recorded as not
sent, with why."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.conftest import Parley, eventually
from tests.helpers import telnyx_signed

ORG = str(uuid.uuid4())
OURS = "+15550009999"
THEM = "+15550188777"


async def post(parley: Parley, event_type: str, payload: dict[str, Any]) -> None:
    body = json.dumps({"data": {"event_type": event_type, "payload": payload}}).encode()
    response = await parley.http.post(
        parley.gateway + "/webhooks/telnyx/messages", content=body, headers=telnyx_signed(body)
    )
    assert response.status_code == 200, response.text


def inbound(text: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "organization_id": ORG,
        "direction": "inbound",
        "from": {"phone_number": THEM},
        "to": [{"phone_number": OURS}],
        "text": text,
    }


async def test_a_telnyx_message_is_a_conversation_and_is_never_sent_through_twilio(
    parley: Parley,
) -> None:
    first = inbound("Do you open on Sundays?")
    await post(parley, "message.received", first)
    await post(parley, "message.received", first)  # Telnyx retried: one message

    async def answered() -> list[dict[str, Any]] | None:
        history = await parley.history_of(THEM)
        return history if len(history) == 2 and history[1]["status"] == "canceled" else None

    history = await eventually(answered)
    assert [(m["direction"], m["body"]) for m in history] == [
        ("inbound", "Do you open on Sundays?"),
        ("outbound", "AI says: Do you open on Sundays?"),
    ]
    [conversation] = await parley.conversations_of(THEM)
    assert (conversation["provider"], conversation["our_address"]) == ("telnyx", OURS)
    assert parley.openai.requests[-1]["messages"][-1]["content"] == "Do you open on Sundays?"

    # An operator's message to the Telnyx thread is not sent through Twilio either.
    response = await parley.conversation.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"agent": "Ana", "body": "Yes!"}
    )
    assert response.status_code == 202, response.text

    async def refused() -> list[dict[str, Any]] | None:
        history = await parley.history_of(THEM)
        return history if len(history) == 3 and history[2]["status"] == "canceled" else None

    await eventually(refused)
    assert all(m.to != THEM for m in parley.twilio.sent)

    # Status events of Telnyx's own are taken (and say nothing of ours here).
    await post(
        parley,
        "message.finalized",
        {
            "id": str(uuid.uuid4()),
            "organization_id": ORG,
            "from": {"phone_number": OURS},
            "to": [{"phone_number": THEM, "status": "delivered"}],
        },
    )

    async def counted() -> bool | None:
        stats = (await parley.analytics.get("/v1/stats")).json()
        return stats["messages"]["inbound"] == 1 or None

    await eventually(counted)
