"""Crash windows of the ai and sender services, on a real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from parley_ai import store as ai_store
from parley_ai.core import Persona
from parley_ai.llm import Completion
from parley_ai.service import AiProjection, AiService
from parley_dev import sandbox
from parley_dev.serve import serving
from parley_sender import store as sender_store
from parley_sender.service import SenderProjection, SenderService
from parley_sender.twilio_client import TwilioMessaging
from parley_shared.db import OutboxRelay, Pool, apply_schema, create_pool
from parley_shared.events import (
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    new_envelope,
)
from parley_shared.identity import derived_event_id, inbound_event_id
from parley_shared.memory import InMemoryBus
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    name = f"once_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = await create_pool(database_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


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


class GatedResponder:
    """A model that waits until the test lets it answer."""

    offline = False

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()
        self.gate = asyncio.Event()

    async def complete(self, persona: Persona, messages: list[dict[str, str]]) -> Completion:
        self.calls += 1
        self.called.set()
        await self.gate.wait()
        return Completion("the answer", "m", 1, 1, 1)

    async def close(self) -> None:
        return None


async def test_ai_restart_mid_call_still_yields_one_reply(pool: Pool) -> None:
    await apply_schema(pool, ai_store.SERVICE, ai_store.SCHEMA)
    bus = InMemoryBus()
    responder = GatedResponder()
    service = AiService(
        pool=pool,
        responder=responder,
        relay=OutboxRelay(pool, "ai", bus),
        defaults=Persona("p", "m", 100, 0.0),
        numbers={},
        history_turns=10,
        fallback_reply="sorry",
        max_in_flight=1,
        projection=AiProjection(pool),
    )
    event = inbound()
    await service.handle(event)
    await service.handle(event)  # redelivered

    # The process "dies" while the model is thinking: the transaction never commits.
    call = asyncio.create_task(service.answer_one())
    await responder.called.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await pool.fetchval("SELECT count(*) FROM ai_outbox") == 0

    responder.gate.set()
    assert await service.answer_one() is True
    assert await service.answer_one() is False
    await OutboxRelay(pool, "ai", bus).publish_pending()
    [reply] = bus.events("reply.generated")
    assert reply.event_id == derived_event_id("reply.generated", event.event_id)
    assert responder.calls == 2
    # The reply, seen again on the log, changes nothing.
    await service.handle(reply)
    assert await pool.fetchval("SELECT state FROM ai_inbox") == "done"


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[sandbox.Sandbox, TwilioMessaging]]:
    box = sandbox.Sandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, lifecycle=[])
    async with serving(sandbox.create_app(box)) as url:
        client = TwilioMessaging(ACCOUNT_SID, AUTH_TOKEN, url, 10)
        try:
            yield box, client
        finally:
            await client.close()


async def queued_reply(pool: Pool, service: SenderService, body: str) -> Envelope:
    cause = inbound()
    payload = ReplyGenerated(
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
    await service.handle(reply)
    return reply


@pytest.mark.parametrize("accepted_before_crash", [True, False])
async def test_sender_crash_after_twilio_accepted_does_not_send_twice(
    pool: Pool, twilio: tuple[sandbox.Sandbox, TwilioMessaging], accepted_before_crash: bool
) -> None:
    box, client = twilio
    await apply_schema(pool, sender_store.SERVICE, sender_store.SCHEMA)
    bus = InMemoryBus()
    service = SenderService(
        pool=pool,
        twilio=client,
        relay=OutboxRelay(pool, "sender", bus),
        status_callback="https://parley.test/webhooks/twilio/status",
        max_attempts=3,
        max_in_flight=1,
        lease_s=30,
        projection=SenderProjection(pool),
    )
    reply = await queued_reply(pool, service, "Your table is booked for 8pm.")
    # A previous worker marked it sending, called Twilio, and died before recording.
    await pool.execute(
        "UPDATE sender_outbound SET state = 'sending', attempts = 1, sending_since = $1, "
        "next_attempt_at = now() WHERE reply_event_id = $2",
        datetime.now(UTC) - timedelta(seconds=2),
        reply.event_id,
    )
    if accepted_before_crash:
        await client.send(
            to="+15550200001",
            from_="+15557654321",
            messaging_service_sid=None,
            body="Your table is booked for 8pm.",
            status_callback="",
        )
    calls_before = box.create_calls

    assert await service.send_one() is True
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [outcome] = bus.events("message.sent")
    assert len(box.sent) == 1
    assert box.create_calls == calls_before + (0 if accepted_before_crash else 1)
    assert isinstance(outcome.payload, MessageSent)
    assert outcome.payload.message_sid == box.sent[0].sid
    assert await service.send_one() is False
    # Redelivered reply after it was sent: not queued again.
    await service.handle(reply)
    assert await service.send_one() is False
    assert len(box.sent) == 1


async def test_sender_refuses_a_reply_to_someone_who_opted_out_meanwhile(
    pool: Pool, twilio: tuple[sandbox.Sandbox, TwilioMessaging]
) -> None:
    box, client = twilio
    await apply_schema(pool, sender_store.SERVICE, sender_store.SCHEMA)
    bus = InMemoryBus()
    projection = SenderProjection(pool)
    service = SenderService(
        pool=pool,
        twilio=client,
        relay=OutboxRelay(pool, "sender", bus),
        status_callback="https://parley.test/webhooks/twilio/status",
        max_attempts=3,
        max_in_flight=1,
        lease_s=30,
        projection=projection,
    )
    # The reply was generated before the STOP arrived, and is due after it.
    reply = await queued_reply(pool, service, "Here are today's specials.")
    await projection.handle(inbound("Stop"))
    assert await service.send_one() is True
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [outcome] = bus.events("message.sent")
    assert isinstance(outcome.payload, MessageSent)
    assert (outcome.payload.status, outcome.payload.error_code) == ("canceled", 21610)
    assert outcome.payload.reply_event_id == reply.event_id
    assert box.create_calls == 0

    await projection.handle(inbound("START"))
    await queued_reply(pool, service, "Welcome back.")
    assert await service.send_one() is True
    assert [m.body for m in box.sent] == ["Welcome back."]
