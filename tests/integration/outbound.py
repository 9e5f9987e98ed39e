"""Building blocks of the sender's tests: inbound messages, queued replies, one send."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from parley_sender.projection import SenderProjection
from parley_sender.service import OutgoingInbox, Route
from parley_sender.twilio_client import TwilioMessaging
from parley_shared.db import Pool
from parley_shared.events import Envelope, MessageReceived, ReplyGenerated, new_envelope
from parley_shared.identity import derived_event_id, inbound_event_id
from tests.helpers import ACCOUNT_SID


def inbound(body: str = "hello") -> Envelope:
    sid = "SM" + uuid.uuid4().hex
    payload = MessageReceived(
        message_sid=sid,
        account_sid=ACCOUNT_SID,
        channel="sms",
        participant="+15550200001",
        our_address="+15557654321",
        body=body,
    )
    return new_envelope(
        payload,
        event_id=inbound_event_id(sid),
        conversation_key="cv_once",
        account_sid=ACCOUNT_SID,
        occurred_at=datetime.now(UTC),
    )


def outgoing_inbox(client: TwilioMessaging, call_timeout_s: float = 10) -> OutgoingInbox:
    return OutgoingInbox(
        routes={"twilio": Route(client, "https://parley.test/webhooks/twilio/status")},
        retry_window_s=60,
        call_timeout_s=call_timeout_s,
        lease_s=30,
    )


async def send_one(pool: Pool, inbox: OutgoingInbox) -> bool:
    """What the lease worker does for one item; False when nothing was due."""
    claims = await inbox.claim(pool, 1)
    for claim in claims:
        await inbox.record(pool, [(claim, await inbox.perform(claim))])
    return bool(claims)


async def queued_reply(
    pool: Pool, projection: SenderProjection, body: str, provider: str = "twilio"
) -> Envelope:
    cause = inbound()
    payload = ReplyGenerated(
        provider=provider,
        in_reply_to=cause.event_id,
        inbound_message_sid="SM1",
        inbound_at=cause.occurred_at,
        channel="sms",
        participant="+15550200001",
        our_address="+15557654321",
        body=body,
        source="ai",
    )
    reply = new_envelope(
        payload,
        event_id=derived_event_id("reply.generated", cause.event_id),
        conversation_key="cv_once",
        account_sid=ACCOUNT_SID,
        occurred_at=datetime.now(UTC),
    )
    await projection.handle(reply)
    return reply
