"""Every projection lands on the same state whatever order the topics are read in.

Kafka keeps order within a partition only: a replay (or a live consumer that lags on one
topic) reads a conversation's replies, outcomes, statuses and closes interleaved with its
messages in any order. The same events are applied here in several interleavings, each
keeping every topic's own order and cut into polls of random sizes, and the digests of every
service's tables must be equal.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from parley_dev.digest import digest
from parley_dev.rebuild import PROJECTIONS
from parley_gateway.core import outcome_of
from parley_gateway.email_core import email_event
from parley_shared import topics
from parley_shared.conversations import first_conversation_id, following_id
from parley_shared.db import Pool, create_pool
from parley_shared.events import (
    CallUpdated,
    Channel,
    ConversationChanged,
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
    caused_by,
    new_envelope,
)
from parley_shared.identity import (
    call_event_id,
    conversation_key,
    derived_event_id,
    inbound_event_id,
    status_event_id,
)
from parley_shared.migrations import migrate
from tests.helpers import ACCOUNT_SID

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
OURS = "+15557654321"


class Thread:
    """One participant's events, by topic, in the order each topic holds them."""

    def __init__(self, participant: str, channel: Channel) -> None:
        self.participant = participant
        self.channel = channel
        self.key = conversation_key(
            account_sid=ACCOUNT_SID, our_endpoint=OURS, participant=participant, channel=channel
        )
        self.by_topic: dict[str, list[Envelope]] = {t: [] for t in topics.ALL}

    def text(
        self,
        body: str,
        minute: float,
        *,
        answered: bool = True,
        statuses: tuple[str, ...] = ("sent", "delivered"),
    ) -> None:
        sid = "SM" + uuid.uuid4().hex
        at = T0 + timedelta(minutes=minute)
        inbound = new_envelope(
            MessageReceived(
                message_sid=sid,
                account_sid=ACCOUNT_SID,
                channel=self.channel,
                participant=self.participant,
                our_address=OURS,
                body=body,
            ),
            event_id=inbound_event_id(sid),
            conversation_key=self.key,
            account_sid=ACCOUNT_SID,
            occurred_at=at,
        )
        self.by_topic[topics.MESSAGE_RECEIVED].append(inbound)
        if not answered:
            return
        reply = caused_by(
            inbound,
            ReplyGenerated(
                in_reply_to=inbound.event_id,
                inbound_message_sid=sid,
                inbound_at=at,
                channel=self.channel,
                participant=self.participant,
                our_address=OURS,
                body=f"answer to {body}",
                source="ai",
                model="m",
                prompt_tokens=10,
                completion_tokens=5,
                latency_ms=700,
            ),
            event_id=derived_event_id(topics.REPLY_GENERATED, inbound.event_id),
            occurred_at=at + timedelta(seconds=1),
        )
        out_sid = "SM" + uuid.uuid4().hex
        sent = caused_by(
            reply,
            MessageSent(
                reply_event_id=reply.event_id,
                in_reply_to=inbound.event_id,
                inbound_at=at,
                channel=self.channel,
                participant=self.participant,
                our_address=OURS,
                body=reply.payload.body,
                message_sid=out_sid,
                status="queued",
            ),
            event_id=derived_event_id(topics.MESSAGE_SENT, reply.event_id),
            occurred_at=at + timedelta(seconds=2),
        )
        self.by_topic[topics.REPLY_GENERATED].append(reply)
        self.by_topic[topics.MESSAGE_SENT].append(sent)
        for n, status in enumerate(statuses):
            self.by_topic[topics.STATUS_UPDATED].append(
                caused_by(
                    sent,
                    StatusUpdated(
                        message_sid=out_sid,
                        account_sid=ACCOUNT_SID,
                        status=status,
                        channel=self.channel,
                        participant=self.participant,
                        our_address=OURS,
                    ),
                    event_id=status_event_id(out_sid, status),
                    occurred_at=at + timedelta(seconds=3 + n),
                )
            )

    def call(self, statuses: tuple[str, ...], minute: float, seconds: int = 0) -> None:
        """A call from the participant, one ``call.updated`` per status callback."""
        sid = "CA" + uuid.uuid4().hex
        for n, status in enumerate(statuses):
            self.by_topic[topics.CALL_UPDATED].append(
                new_envelope(
                    CallUpdated(
                        call_sid=sid,
                        account_sid=ACCOUNT_SID,
                        direction="inbound",
                        participant=self.participant,
                        our_address=OURS,
                        status=status,
                        outcome=outcome_of(status),
                        duration_s=seconds if status == "completed" else None,
                    ),
                    event_id=call_event_id(sid, status),
                    conversation_key=self.key,
                    account_sid=ACCOUNT_SID,
                    occurred_at=T0 + timedelta(minutes=minute, seconds=n),
                )
            )

    def change(self, conversation: uuid.UUID, action: str, minute: float) -> None:
        self.by_topic[topics.CONVERSATION_CHANGED].append(
            new_envelope(
                ConversationChanged(
                    conversation_id=conversation,
                    action=action,  # type: ignore[arg-type]
                    channel=self.channel,
                    participant=self.participant,
                    our_address=OURS,
                ),
                event_id=uuid.uuid4(),
                conversation_key=self.key,
                account_sid=ACCOUNT_SID,
                occurred_at=T0 + timedelta(minutes=minute),
            )
        )


def workload() -> list[list[Envelope]]:
    """The topics' contents (each a list in log order) of a small but tricky history."""
    closed = Thread("+15550400001", "sms")
    closed.text("Hi", 1)
    closed.text("Opening hours?", 2)
    first = first_conversation_id(closed.key)
    closed.change(first, "closed", 3)
    closed.text("New question", 4)
    closed.change(following_id(first), "closed", 5)
    closed.text("And another", 6)
    opted = Thread("+15550400002", "sms")
    opted.text("Hello", 1)
    opted.text("STOP", 2, answered=False)
    opted.text("START", 3, answered=False)
    opted.text("Back again", 4)
    reopened = Thread("whatsapp:+15550400003", "whatsapp")
    reopened.text("Hola", 1, statuses=("read", "sent", "delivered"))
    first_w = first_conversation_id(reopened.key)
    reopened.change(first_w, "closed", 2)
    reopened.text("Still there?", 3)
    reopened.change(first_w, "reopened", 4)
    reopened.text("Thanks", 5)
    # Conversations across hours: counted in the hour each opened, wherever read order put
    # them first.
    late = Thread("+15550400004", "sms")
    late.text("Still open?", 55)
    late.text("Hello?", 65)
    late.change(first_conversation_id(late.key), "closed", 70)
    late.text("Next day, nearly", 130)
    # Calls: one opens its thread's first conversation before any text, one rings across a
    # close, one is answered; an email opens a thread of its own.
    caller = Thread("+15550400005", "sms")
    caller.call(("ringing", "no-answer"), 1)
    caller.text("Sorry I missed you", 2)
    caller.call(("ringing", "in-progress", "completed"), 3, seconds=40)
    caller.change(first_conversation_id(caller.key), "closed", 4)
    caller.call(("ringing", "busy"), 5)
    # Twilio does not promise order: "in-progress" reported after "completed".
    closed.call(("ringing", "completed", "in-progress"), 4.5, seconds=12)
    emailed = Thread("+15550400006", "sms")
    emailed.by_topic[topics.EMAIL_RECEIVED].append(
        email_event(
            {
                "from": ["Ann <ann@mail.example>"],
                "to": ["help@shop.example"],
                "subject": ["Hi"],
                "text": ["Hello"],
                "headers": ["Message-ID: <1@mail.example>\n"],
            },
            0,
            T0 + timedelta(minutes=2),
        )
    )
    return [
        [
            e
            for thread in (closed, opted, reopened, late, caller, emailed)
            for e in thread.by_topic[topic]
        ]
        for topic in topics.ALL
    ]


# Conversations and open ones: as the hourly rollup counts them, and as they are.
COUNTED_BY_HOUR = (
    "SELECT sum(conversations)::int, sum(open_conversations)::int FROM analytics_hourly"
)
COUNTED = (
    "SELECT count(*)::int, (count(*) FILTER (WHERE closed_at IS NULL))::int "
    "FROM analytics_conversations"
)


async def pair(pool: Pool, sql: str) -> tuple[int, int]:
    row = await pool.fetchrow(sql)
    assert row is not None
    return row[0], row[1]


def interleave(streams: list[list[Envelope]], rng: random.Random) -> list[list[Envelope]]:
    """Polls: the streams merged in a random order that keeps each stream's own order."""
    queues = [list(s) for s in streams if s]
    merged: list[Envelope] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        queues = [q for q in queues if q]
    polls = []
    while merged:
        size = rng.randint(1, 6)
        polls.append(merged[:size])
        merged = merged[size:]
    return polls


@pytest.mark.parametrize("service", sorted(PROJECTIONS))
async def test_every_read_order_gives_the_same_tables(database: str, service: str) -> None:
    streams = workload()
    projection = PROJECTIONS[service]
    digests = []
    for seed in range(6):
        orders = (
            [[e] for stream in streams for e in stream]  # one topic after another
            if seed == 0
            else interleave(streams if seed % 2 else streams[::-1], random.Random(seed))
        )
        pool = await create_pool(database, schema=f"{service}_{seed}")
        try:
            await migrate(pool, service, projection.migrations)
            state = projection.build(pool)
            for poll in orders:
                await state.handle_batch(poll)
            digests.append(await digest(pool, service))
            if service == "analytics":
                assert await pair(pool, COUNTED_BY_HOUR) == await pair(pool, COUNTED)
        finally:
            await pool.close()
    assert all(d == digests[0] for d in digests), f"{service}: tables depend on read order"
