"""The sender through Twilio's failures: looking up an attempt that may have been taken, a
look-up that fails, identical replies, an outage longer than a few retries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID, uuid4

import pytest

from parley_dev import sandbox
from parley_sender import tables
from parley_sender.projection import SenderProjection
from parley_sender.service import GAVE_UP
from parley_sender.twilio_client import SendError, TwilioMessaging
from parley_shared.conversations import first_conversation_id
from parley_shared.db import Pool
from parley_shared.events import ConversationChanged, Envelope, new_envelope
from parley_shared.memory import InMemoryBus
from parley_shared.migrations import migrate
from parley_shared.outbox import OutboxRelay
from tests.helpers import ACCOUNT_SID
from tests.integration.outbound import inbound, outgoing_inbox, queued_reply, send_one

Twilio = tuple[sandbox.Sandbox, TwilioMessaging]


@pytest.fixture(autouse=True)
async def sender_tables(pool: Pool) -> None:
    await migrate(pool, tables.SERVICE, tables.MIGRATIONS)


async def crashed_while_sending(pool: Pool, reply_id: UUID, seconds_ago: float = 2) -> None:
    """What a worker that died between calling Twilio and recording the answer leaves."""
    await pool.execute(
        "UPDATE sender_outbound SET state = 'sending', attempts = 1, sending_since = $1, "
        "first_attempt_at = $1, due_at = now() WHERE reply_event_id = $2",
        datetime.now(UTC) - timedelta(seconds=seconds_ago),
        reply_id,
    )


async def due_now(pool: Pool) -> None:
    await pool.execute("UPDATE sender_outbound SET due_at = now()")


async def outcome_of(pool: Pool, reply_id: UUID) -> tuple[str, str | None]:
    row = await pool.fetchrow(
        "SELECT state, message_sid FROM sender_outbound WHERE reply_event_id = $1", reply_id
    )
    assert row is not None
    return row["state"], row["message_sid"]


async def test_an_accepted_message_not_sent_yet_is_found(pool: Pool, twilio: Twilio) -> None:
    """Twilio took it but has not sent it: it has no send date, so a DateSent filter
    would miss it and the reply would go out twice."""
    box, client = twilio
    reply = await queued_reply(pool, SenderProjection(pool), "See you at 8.")
    await crashed_while_sending(pool, reply.event_id)
    box.faults.append(sandbox.Fault(500, 20500, accept=True))  # taken, then an error
    box.lifecycle = []  # stays queued: no send date
    with pytest.raises(SendError):
        await client.send(
            to="+15550200001",
            from_="+15557654321",
            messaging_service_sid=None,
            body="See you at 8.",
            status_callback="https://parley.test/webhooks/twilio/status",
        )
    assert box.sent[0].date_sent is None
    calls = box.create_calls

    assert await send_one(pool, outgoing_inbox(client))
    assert box.create_calls == calls and len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sent", box.sent[0].sid)


async def test_a_failed_look_up_is_not_taken_for_not_sent(pool: Pool, twilio: Twilio) -> None:
    box, client = twilio
    reply = await queued_reply(pool, SenderProjection(pool), "Your order shipped.")
    await crashed_while_sending(pool, reply.event_id)
    await client.send(
        to="+15550200001",
        from_="+15557654321",
        messaging_service_sid=None,
        body="Your order shipped.",
        status_callback="",
    )
    box.list_faults.append(sandbox.Fault(429, 20429, "Too Many Requests"))
    inbox = outgoing_inbox(client)

    assert await send_one(pool, inbox)
    assert await outcome_of(pool, reply.event_id) == ("sending", None)  # still "maybe sent"
    await due_now(pool)
    assert await send_one(pool, inbox)
    assert len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sent", box.sent[0].sid)


async def test_identical_replies_never_claim_the_same_message(pool: Pool, twilio: Twilio) -> None:
    """Two fallback apologies to one person: the second's crashed attempt never reached
    Twilio, so the first's message must not be taken for it."""
    box, client = twilio
    projection = SenderProjection(pool)
    inbox = outgoing_inbox(client)
    first = await queued_reply(pool, projection, "Sorry, we can't answer right now.")
    assert await send_one(pool, inbox)
    second = await queued_reply(pool, projection, "Sorry, we can't answer right now.")
    await crashed_while_sending(pool, second.event_id, seconds_ago=0)

    while await send_one(pool, inbox):
        await due_now(pool)

    assert len(box.sent) == 2
    assert await outcome_of(pool, first.event_id) == ("sent", box.sent[0].sid)
    assert await outcome_of(pool, second.event_id) == ("sent", box.sent[1].sid)


async def test_a_twilio_outage_longer_than_a_few_retries_still_delivers(
    pool: Pool, twilio: Twilio
) -> None:
    box, client = twilio
    reply = await queued_reply(pool, SenderProjection(pool), "Back online.")
    box.faults.extend(sandbox.Fault(503, 20503) for _ in range(12))
    inbox = outgoing_inbox(client)  # a 60 s window: the outage is shorter
    attempts = 0
    while await send_one(pool, inbox):
        attempts += 1
        await due_now(pool)
    assert attempts == 13 and len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sent", box.sent[0].sid)


async def test_past_the_window_a_reply_that_may_be_sent_is_looked_up_not_resent(
    pool: Pool, twilio: Twilio
) -> None:
    box, client = twilio
    bus = InMemoryBus()
    reply = await queued_reply(pool, SenderProjection(pool), "Late news.")
    await crashed_while_sending(pool, reply.event_id, seconds_ago=3600)
    box.list_faults.append(sandbox.Fault(500, 20500))
    inbox = outgoing_inbox(client)

    assert await send_one(pool, inbox)  # the look-up fails: still not known, not failed
    assert await outcome_of(pool, reply.event_id) == ("sending", None)
    await due_now(pool)
    assert await send_one(pool, inbox)  # Twilio answers: not there, and too late to send
    assert box.create_calls == 0
    assert await outcome_of(pool, reply.event_id) == ("failed", None)
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [outcome] = bus.events("message.sent")
    assert outcome.payload.error_message == GAVE_UP  # type: ignore[attr-defined]


async def test_a_hung_send_is_given_up_after_its_own_time_out_and_sent_once(
    pool: Pool, twilio: Twilio
) -> None:
    """The twilio async client ignores its time-out; ours bounds each call."""
    box, client = twilio
    reply = await queued_reply(pool, SenderProjection(pool), "Hello again.")
    box.faults.append(sandbox.Fault(503, 20503, hang_s=3))
    inbox = outgoing_inbox(client, call_timeout_s=0.5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await send_one(pool, inbox)
    assert loop.time() - began < 2.5
    assert await outcome_of(pool, reply.event_id) == ("sending", None)  # it may have gone
    await due_now(pool)
    assert await send_one(pool, inbox)  # looked up: not there; sent
    assert len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sent", box.sent[0].sid)


async def test_twilio_unsubscribed_answer_opts_out_live_and_on_a_replay(
    pool: Pool, twilio: Twilio
) -> None:
    box, client = twilio
    projection = SenderProjection(pool)
    reply = await queued_reply(pool, projection, "Anything else?")
    box.faults.append(sandbox.Fault(400, 21610, "Attempt to send to unsubscribed recipient"))
    assert await send_one(pool, outgoing_inbox(client))
    bus = InMemoryBus()
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [sent] = bus.events("message.sent")
    live = await pool.fetch("SELECT * FROM sender_optouts")
    assert [(r["conversation_key"], r["opted_out"]) for r in live] == [("cv_once", True)]

    await pool.execute("TRUNCATE sender_optouts, sender_outbound, sender_processed")
    await projection.handle_batch([reply, sent])
    assert await pool.fetch("SELECT * FROM sender_optouts") == live


async def test_a_reply_is_not_sent_into_a_conversation_closed_after_it_was_written(
    pool: Pool, twilio: Twilio
) -> None:
    box, client = twilio
    projection = SenderProjection(pool)
    inbox = outgoing_inbox(client)

    def change(action: Literal["closed", "reopened"], at: datetime) -> Envelope:
        payload = ConversationChanged(
            conversation_id=first_conversation_id("cv_once"),
            action=action,
            channel="sms",
            participant="+15550200001",
            our_address="+15557654321",
        )
        return new_envelope(
            payload,
            event_id=uuid4(),
            conversation_key="cv_once",
            account_sid=ACCOUNT_SID,
            occurred_at=at,
        )

    # A close of an earlier conversation does not cancel a reply in the next one.
    await projection.handle(change("closed", datetime.now(UTC) - timedelta(hours=1)))
    answered = await queued_reply(pool, projection, "First answer.")
    assert await send_one(pool, inbox)
    assert await outcome_of(pool, answered.event_id) == ("sent", box.sent[0].sid)

    late = await queued_reply(pool, projection, "Too late.")
    await projection.handle(change("closed", datetime.now(UTC)))
    assert await send_one(pool, inbox)
    assert await outcome_of(pool, late.event_id) == ("skipped", None)
    assert len(box.sent) == 1
    bus = InMemoryBus()
    await OutboxRelay(pool, "sender", bus).publish_pending()
    cancelled = bus.events("message.sent")[-1].payload
    assert (cancelled.status, cancelled.error_message) == (  # type: ignore[attr-defined]
        "canceled",
        "conversation closed; not sent",
    )


async def test_our_own_cancel_for_a_stop_is_not_an_opt_out_on_a_replay(
    pool: Pool, twilio: Twilio
) -> None:
    """STOP, a reply cancelled because of it, then START (written before the cancel was
    recorded, read after it): the participant has opted back in, live and rebuilt alike."""
    box, client = twilio
    projection = SenderProjection(pool)
    stop = inbound("STOP")
    await projection.handle(stop)
    reply = await queued_reply(pool, projection, "Here you go.")
    start = inbound("START")
    assert await send_one(pool, outgoing_inbox(client))
    await projection.handle(start)
    bus = InMemoryBus()
    await OutboxRelay(pool, "sender", bus).publish_pending()
    [cancelled] = bus.events("message.sent")
    assert cancelled.payload.status == "canceled"  # type: ignore[attr-defined]
    assert box.create_calls == 0
    live = await pool.fetchval("SELECT opted_out FROM sender_optouts")

    await pool.execute("TRUNCATE sender_optouts, sender_outbound, sender_processed")
    await projection.handle_batch([stop, reply, start, cancelled])
    assert live is False
    assert await pool.fetchval("SELECT opted_out FROM sender_optouts") is False
