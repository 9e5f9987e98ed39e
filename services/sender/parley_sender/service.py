"""Handlers of the sender: queue replies from the log, and send each exactly once.

Never twice: before calling Twilio a worker commits the reply as 'sending'. If the process
dies after Twilio accepted the message but before the result was recorded, the row is still
'sending' when its lease runs out, and the next attempt first asks Twilio for a message to
the same number with the same body since the first attempt, and records that instead of
sending again. What remains: a message Twilio accepted but does not list yet (its list is
eventually consistent, typically well under a second; the lease is many seconds), or an
identical body sent to the same person by something else in that window.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from opentelemetry import trace

from parley_sender import store
from parley_sender.core import OPTED_OUT_CODE, Outcome, backoff_s, classify_error
from parley_sender.twilio_client import MessagingPort, SendError
from parley_shared import topics
from parley_shared.db import Connection, OutboxRelay, Pool, enqueue
from parley_shared.events import (
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    caused_by,
    decode,
)
from parley_shared.identity import derived_event_id
from parley_shared.keywords import keyword_of
from parley_shared.projection import Projection
from parley_shared.workers import run_workers

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.sender")


@dataclass
class SenderProjection(Projection):
    """The consumer side: replies to send, outcomes and opt-outs; never calls Twilio."""

    service: ClassVar[str] = store.SERVICE
    pool: Pool
    work: asyncio.Event = field(default_factory=asyncio.Event)

    async def apply(self, conn: Connection, event: Envelope) -> None:
        payload = event.payload
        if isinstance(payload, ReplyGenerated):
            await store.add_reply(conn, event)
        elif isinstance(payload, MessageSent):
            await store.record_outcome_from_log(conn, event)
        elif isinstance(payload, MessageReceived):
            keyword = keyword_of(payload.body)
            if keyword in ("opt_out", "opt_in"):
                await store.set_opt_out(
                    conn, event.conversation_key, keyword == "opt_out", event.occurred_at
                )

    def applied(self) -> None:
        self.work.set()


@dataclass
class SenderService:
    """The worker side: sends due replies, at most ``max_in_flight`` at a time."""

    pool: Pool
    twilio: MessagingPort
    relay: OutboxRelay
    status_callback: str
    max_attempts: int
    max_in_flight: int
    lease_s: float
    projection: SenderProjection

    @property
    def _work(self) -> asyncio.Event:
        return self.projection.work

    async def handle(self, event: Envelope) -> None:
        await self.projection.handle(event)

    async def run_workers(self) -> None:
        await run_workers(self.max_in_flight, self.send_one, self._work, "sending")

    async def send_one(self) -> bool:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                row = await store.claim_next(conn, self.lease_s)
                if row is None:
                    return False
                reply = decode(row["event"])
                assert isinstance(reply.payload, ReplyGenerated)
                if await store.is_opted_out(conn, reply.conversation_key):
                    await self._settle(
                        conn,
                        reply,
                        Outcome(
                            "failed",
                            status="canceled",
                            error_code=OPTED_OUT_CODE,
                            error_message="recipient opted out (STOP); not sent",
                        ),
                        row["attempts"],
                    )
                    return True
                maybe_sent = row["state"] == "sending"
                since = await store.mark_sending(conn, reply.event_id)
            self._work.set()
            # The lease is committed: no other worker takes this reply while we call Twilio.
            outcome = await self._attempt(reply, maybe_sent, since)
            async with conn.transaction():
                attempts = row["attempts"] + 1
                if outcome.kind == "retry" and attempts < self.max_attempts:
                    await store.retry_later(
                        conn,
                        reply.event_id,
                        backoff_s(attempts),
                        outcome.error_code,
                        outcome.error_message,
                        maybe_sent=outcome.error_code is None or outcome.error_code != 20429,
                    )
                else:
                    await self._settle(conn, reply, outcome, attempts)
        return True

    async def _attempt(self, reply: Envelope, maybe_sent: bool, since: datetime) -> Outcome:
        p = reply.payload
        assert isinstance(p, ReplyGenerated)
        with tracer.start_as_current_span("twilio.send"):
            try:
                if maybe_sent:
                    found = await self.twilio.find_sent(
                        to=p.participant, body=p.body, since=since - timedelta(seconds=5)
                    )
                    if found is not None:
                        log.warning(
                            "reply %s was already accepted as %s; not resending",
                            reply.event_id,
                            found,
                        )
                        return Outcome("sent", message_sid=found, status="queued")
                accepted = await self.twilio.send(
                    to=p.participant,
                    from_=p.our_address,
                    messaging_service_sid=p.messaging_service_sid,
                    body=p.body,
                    status_callback=self.status_callback,
                )
            except SendError as exc:
                outcome = classify_error(exc.http_status, exc.code, exc.message)
                if outcome.kind == "retry" and exc.http_status == 429:
                    return Outcome("retry", error_code=20429, error_message=exc.message)
                return outcome
        return Outcome(
            "sent",
            message_sid=accepted.message_sid,
            status=accepted.status,
            error_code=None,
            error_message=None,
        )

    async def _settle(
        self, conn: Connection, reply: Envelope, outcome: Outcome, attempts: int
    ) -> None:
        p = reply.payload
        assert isinstance(p, ReplyGenerated)
        status = outcome.status or ("queued" if outcome.kind == "sent" else "failed")
        state = (
            "sent" if outcome.kind == "sent" else "skipped" if status == "canceled" else "failed"
        )
        await store.settle(
            conn,
            reply.event_id,
            state,
            outcome.message_sid,
            outcome.error_code,
            outcome.error_message,
        )
        if outcome.error_code == OPTED_OUT_CODE:
            await store.set_opt_out(conn, reply.conversation_key, True, reply.occurred_at)
        sent = MessageSent(
            reply_event_id=reply.event_id,
            in_reply_to=p.in_reply_to,
            inbound_at=p.inbound_at,
            channel=p.channel,
            participant=p.participant,
            our_address=p.our_address,
            body=p.body,
            message_sid=outcome.message_sid,
            status=status,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            segments=p.segments,
            attempts=attempts,
        )
        await enqueue(
            conn,
            store.SERVICE,
            topics.MESSAGE_SENT,
            caused_by(
                reply,
                sent,
                event_id=derived_event_id(topics.MESSAGE_SENT, reply.event_id),
                occurred_at=datetime.now(UTC),
            ),
        )
        self.relay.notify()
