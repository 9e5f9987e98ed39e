"""Crash windows of the ai and sender services, on a real Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from parley_ai import tables as ai_tables
from parley_ai.core import Behaviour, Persona
from parley_ai.llm import Completion
from parley_ai.service import AiProjection, RepliesInbox
from parley_dev import sandbox
from parley_sender import tables as sender_tables
from parley_sender.projection import SenderProjection
from parley_sender.twilio_client import TwilioMessaging
from parley_shared.db import Pool, create_pool
from parley_shared.events import (
    ConversationChanged,
    MessageSent,
    new_envelope,
)
from parley_shared.identity import derived_event_id
from parley_shared.leases import LeaseWorker
from parley_shared.memory import InMemoryBus
from parley_shared.migrations import migrate
from parley_shared.outbox import OutboxRelay
from tests.e2e.conftest import eventually
from tests.helpers import ACCOUNT_SID
from tests.integration.outbound import inbound, outgoing_inbox, queued_reply, send_one


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


def replies_inbox(responder: GatedResponder) -> RepliesInbox:
    return RepliesInbox(
        responder=responder,
        defaults=Behaviour(Persona("p", "m", 100, 0.0), "sorry", 10),
        numbers={},
        deadline_s=5,
        lease_s=30,
    )


async def test_ai_restart_mid_call_still_yields_one_reply(pool: Pool) -> None:
    await migrate(pool, ai_tables.SERVICE, ai_tables.MIGRATIONS)
    bus = InMemoryBus()
    responder = GatedResponder()
    projection = AiProjection(pool)
    inbox = replies_inbox(responder)
    event = inbound()
    await projection.handle(event)
    await projection.handle(event)  # redelivered

    # The process "dies" while the model is thinking: the lease is held, nothing recorded.
    [claim] = await inbox.claim(pool, 10)
    call = asyncio.create_task(inbox.perform(claim))
    await responder.called.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await inbox.claim(pool, 10) == []  # leased: nobody else takes it meanwhile
    assert await pool.fetchval("SELECT count(*) FROM ai_outbox") == 0

    # The lease runs out; another worker answers it.
    await pool.execute("UPDATE ai_inbox SET due_at = now() - interval '1 second'")
    responder.gate.set()
    [again] = await inbox.claim(pool, 10)
    assert again.token != claim.token
    await inbox.record(pool, [(again, await inbox.perform(again))])
    # The first worker comes back from the dead with an answer: its lease is gone.
    await inbox.record(pool, [(claim, await inbox.perform(claim))])
    assert await inbox.claim(pool, 10) == []
    await OutboxRelay(pool, "ai", bus).publish_pending()
    [reply] = bus.events("reply.generated")
    assert reply.event_id == derived_event_id("reply.generated", event.event_id)
    assert responder.calls == 3
    # The reply, seen again on the log, changes nothing.
    await projection.handle(reply)
    assert await pool.fetchval("SELECT state FROM ai_inbox") == "done"


async def test_ai_close_during_the_model_call_means_no_reply(pool: Pool) -> None:
    await migrate(pool, ai_tables.SERVICE, ai_tables.MIGRATIONS)
    responder = GatedResponder()
    responder.gate.set()
    projection = AiProjection(pool)
    inbox = replies_inbox(responder)
    message = inbound()
    await projection.handle(message)
    [claim] = await inbox.claim(pool, 10)
    outcome = await inbox.perform(claim)
    close = new_envelope(
        ConversationChanged(
            conversation_id=uuid.uuid4(),
            action="closed",
            channel="sms",
            participant="+15550200001",
            our_address="+15557654321",
        ),
        event_id=uuid.uuid4(),
        conversation_key="cv_once",
        account_sid=ACCOUNT_SID,
        occurred_at=datetime.now(UTC),
    )
    await projection.handle(close)
    await inbox.record(pool, [(claim, outcome)])
    row = await pool.fetchrow("SELECT state, reason FROM ai_inbox")
    assert row is not None
    assert (row["state"], row["reason"]) == ("skipped", "closed")
    assert await pool.fetchval("SELECT count(*) FROM ai_outbox") == 0


async def test_a_slow_call_holds_no_connection(pool: Pool, database: str) -> None:
    """Many model calls in flight on a pool of two connections."""
    await migrate(pool, ai_tables.SERVICE, ai_tables.MIGRATIONS)
    responder = GatedResponder()
    projection = AiProjection(pool)
    inbox = replies_inbox(responder)
    for n in range(40):
        message = inbound(f"question {n}")
        await projection.handle(
            message.model_copy(update={"conversation_key": f"cv_{n}"})  # 40 conversations
        )
    small = await create_pool(database, max_size=2)
    worker = LeaseWorker(small, inbox, name="ai", max_in_flight=100)
    running = asyncio.create_task(worker.run())
    try:

        async def all_called() -> bool:
            return responder.calls == 40

        await eventually(all_called, timeout_s=10)
        assert worker.in_flight == 40
        assert small.get_size() <= 2
        responder.gate.set()

        async def all_answered() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM ai_outbox") == 40)

        await eventually(all_answered, timeout_s=10)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await small.close()


@pytest.mark.parametrize("accepted_before_crash", [True, False])
async def test_sender_crash_after_twilio_accepted_does_not_send_twice(
    pool: Pool, twilio: tuple[sandbox.Sandbox, TwilioMessaging], accepted_before_crash: bool
) -> None:
    box, client = twilio
    await migrate(pool, sender_tables.SERVICE, sender_tables.MIGRATIONS)
    bus = InMemoryBus()
    projection = SenderProjection(pool)
    inbox = outgoing_inbox(client)
    reply = await queued_reply(pool, projection, "Your table is booked for 8pm.")
    # A previous worker marked it sending, called Twilio, and died before recording.
    await pool.execute(
        "UPDATE sender_outbound SET state = 'sending', attempts = 1, sending_since = $1, "
        "due_at = now() WHERE reply_event_id = $2",
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

    assert await send_one(pool, inbox) is True
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [outcome] = bus.events("message.sent")
    assert len(box.sent) == 1
    assert box.create_calls == calls_before + (0 if accepted_before_crash else 1)
    assert isinstance(outcome.payload, MessageSent)
    assert outcome.payload.message_sid == box.sent[0].sid
    assert await send_one(pool, inbox) is False
    # Redelivered reply after it was sent: not queued again.
    await projection.handle(reply)
    assert await send_one(pool, inbox) is False
    assert len(box.sent) == 1


async def test_sender_refuses_a_reply_to_someone_who_opted_out_meanwhile(
    pool: Pool, twilio: tuple[sandbox.Sandbox, TwilioMessaging]
) -> None:
    box, client = twilio
    await migrate(pool, sender_tables.SERVICE, sender_tables.MIGRATIONS)
    bus = InMemoryBus()
    projection = SenderProjection(pool)
    inbox = outgoing_inbox(client)
    # The reply was generated before the STOP arrived, and is due after it.
    reply = await queued_reply(pool, projection, "Here are today's specials.")
    await projection.handle(inbound("Stop"))
    assert await send_one(pool, inbox) is True
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [outcome] = bus.events("message.sent")
    assert isinstance(outcome.payload, MessageSent)
    assert (outcome.payload.status, outcome.payload.error_code) == ("canceled", 21610)
    assert outcome.payload.reply_event_id == reply.event_id
    assert box.create_calls == 0

    await projection.handle(inbound("START"))
    await queued_reply(pool, projection, "Welcome back.")
    assert await send_one(pool, inbox) is True
    assert [m.body for m in box.sent] == ["Welcome back."]
