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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from opentelemetry import trace

from parley_sender import store
from parley_sender.core import (
    OPTED_OUT_CODE,
    Outcome,
    classify_error,
    next_try,
    pick_unclaimed,
)
from parley_sender.twilio_client import MessagingPort, SendError
from parley_shared import topics
from parley_shared.conversations import record_closes
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    ReplyGenerated,
    caused_by,
    decode,
)
from parley_shared.identity import derived_event_id
from parley_shared.keywords import keyword_of
from parley_shared.leases import Claim
from parley_shared.projection import Projection

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.sender")

GAVE_UP = "Twilio did not take the reply within the retry window (SENDER_RETRY_WINDOW_S)"


class SenderProjection(Projection):
    """The consumer side: replies to send, outcomes and opt-outs; never calls Twilio."""

    service: ClassVar[str] = store.SERVICE

    def __init__(self, pool: Pool, on_work: Callable[[], None] | None = None) -> None:
        super().__init__(pool)
        self._on_work = on_work
        self.on(ReplyGenerated, self.replies)
        self.on(OutboundRequested, store.add_requests)
        self.on(MessageSent, self.outcomes)
        self.on(MessageReceived, self.keywords)
        self.on(ConversationChanged, self.changes)

    def wants(self, event: Envelope) -> bool:
        # Of the inbound messages only opt-out and opt-in keywords matter here.
        if isinstance(event.payload, MessageReceived):
            return keyword_of(event.payload.body) in ("opt_out", "opt_in")
        return super().wants(event)

    @staticmethod
    async def replies(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
        await store.add_replies(conn, events)

    @staticmethod
    async def outcomes(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
        await store.record_outcomes_from_log(conn, events)

    @staticmethod
    async def changes(conn: Connection, events: Sequence[Envelope[ConversationChanged]]) -> None:
        await record_closes(conn, store.SERVICE, events)

    @staticmethod
    async def keywords(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        await store.set_opt_outs(
            conn,
            [
                (e.conversation_key, keyword_of(e.payload.body) == "opt_out", e.occurred_at)
                for e in events
            ],
        )

    def applied(self, events: Sequence[Envelope]) -> None:
        if self._on_work is not None and any(
            isinstance(e.payload, ReplyGenerated | OutboundRequested) for e in events
        ):
            self._on_work()


@dataclass(frozen=True)
class Delivery:
    """A leased reply (or operator's message): the event, and what the claim learned."""

    reply: Envelope[ReplyGenerated] | Envelope[OutboundRequested]
    attempts: int
    maybe_sent: bool  # an earlier attempt may have reached Twilio
    sending_since: datetime | None
    opted_out: bool
    closed: bool = False  # its conversation was closed after the reply was generated
    elapsed_s: float = 0.0  # since the first attempt
    overdue: bool = False  # past the retry window: look up, never send


@dataclass
class OutgoingInbox:
    """The worker side (``parley_shared.leases.Inbox``): each reply sent once through Twilio."""

    twilio: MessagingPort
    status_callback: str
    retry_window_s: float
    call_timeout_s: float
    lease_s: float
    on_settled: Callable[[], None] | None = None

    async def claim(self, pool: Pool, limit: int) -> list[Claim[Delivery]]:
        rows = sorted(await store.claim(pool, limit, self.lease_s), key=lambda r: r["seq"])
        return [
            Claim(
                row["reply_event_id"],
                row["lease_token"],
                Delivery(
                    reply=decode(row["event"]),  # type: ignore[arg-type]
                    attempts=row["attempts"],
                    maybe_sent=row["was"] == "sending",
                    sending_since=row["sending_since"],
                    opted_out=row["opted_out"],
                    closed=row["closed"],
                    elapsed_s=row["elapsed_s"],
                    overdue=row["elapsed_s"] > self.retry_window_s,
                ),
            )
            for row in rows
        ]

    async def perform(self, claim: Claim[Delivery]) -> Outcome:
        delivery = claim.work
        if delivery.opted_out:
            return Outcome(
                "failed",
                status="canceled",
                error_code=OPTED_OUT_CODE,
                error_message="recipient opted out (STOP); not sent",
            )
        if delivery.closed:
            return Outcome(
                "failed", status="canceled", error_message="conversation closed; not sent"
            )
        return await self._attempt(delivery)

    async def record(self, pool: Pool, claim: Claim[Delivery], outcome: Outcome) -> float | None:
        delivery = claim.work
        if outcome.kind == "found":
            taken = await store.sids_taken(pool, list(outcome.candidates), claim.id)
            sid = pick_unclaimed(outcome.candidates, taken)
            if sid is not None:
                log.warning("reply %s was already accepted as %s; not resending", claim.id, sid)
                outcome = Outcome("sent", message_sid=sid, status="queued")
            elif delivery.overdue:
                outcome = Outcome("failed", error_message=GAVE_UP)
            else:
                # What Twilio lists belongs to other replies: this one was never taken.
                kept = await store.retry_later(
                    pool, claim.id, claim.token, 0.0, None, None, maybe_sent=False
                )
                return 0.0 if kept else None
        if outcome.kind == "retry":
            delay = next_try(
                delivery.attempts,
                delivery.elapsed_s,
                self.retry_window_s,
                ambiguous=not outcome.not_taken,
            )
            if delay is not None:
                kept = await store.retry_later(
                    pool,
                    claim.id,
                    claim.token,
                    delay,
                    outcome.error_code,
                    outcome.error_message,
                    maybe_sent=not outcome.not_taken,
                )
                return delay if kept else None
        await self._settle(pool, claim, outcome)
        return None

    async def _settle(self, pool: Pool, claim: Claim[Delivery], outcome: Outcome) -> None:
        reply = claim.work.reply
        p = reply.payload
        answers = p if isinstance(p, ReplyGenerated) else None
        status = outcome.status or ("queued" if outcome.kind == "sent" else "failed")
        state = (
            "sent" if outcome.kind == "sent" else "skipped" if status == "canceled" else "failed"
        )
        sent = caused_by(
            reply,
            MessageSent(
                reply_event_id=reply.event_id,
                in_reply_to=answers.in_reply_to if answers else None,
                inbound_at=answers.inbound_at if answers else None,
                requested_at=None if answers else reply.occurred_at,
                channel=p.channel,
                participant=p.participant,
                our_address=p.our_address,
                body=p.body,
                message_sid=outcome.message_sid,
                status=status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                segments=answers.segments if answers else None,
                attempts=claim.work.attempts,
            ),
            event_id=derived_event_id(topics.MESSAGE_SENT, reply.event_id),
            occurred_at=datetime.now(UTC),
        )
        # The same time a rebuild reads from the event.
        opt_out = (
            (reply.conversation_key, sent.occurred_at) if store.unsubscribed(sent.payload) else None
        )
        if not await store.settle(
            pool, claim.id, claim.token, state=state, sent=sent, opt_out=opt_out
        ):
            log.warning("lease on %s was lost before its outcome was recorded", claim.id)
        elif self.on_settled is not None:
            self.on_settled()

    async def _attempt(self, delivery: Delivery) -> Outcome:
        p = delivery.reply.payload
        since = delivery.sending_since or datetime.now(UTC)
        with tracer.start_as_current_span("twilio.send"):
            if delivery.maybe_sent:
                try:
                    # The twilio SDK's async client ignores its own time-out: these are real.
                    async with asyncio.timeout(self.call_timeout_s):
                        found = await self.twilio.find_sent(
                            to=p.participant, body=p.body, since=since - timedelta(seconds=5)
                        )
                except TimeoutError:
                    return Outcome("retry", error_message="Twilio did not answer the look-up")
                except SendError as exc:
                    # Not knowing whether it was sent is not "not sent": look again later.
                    return Outcome(
                        "retry",
                        error_code=exc.code,
                        error_message=f"looking for an earlier attempt: {exc.message}",
                    )
                if found:
                    return Outcome("found", candidates=tuple(found))
            if delivery.overdue:
                return Outcome("failed", error_message=GAVE_UP)
            try:
                async with asyncio.timeout(self.call_timeout_s):
                    accepted = await self.twilio.send(
                        to=p.participant,
                        from_=p.our_address,
                        messaging_service_sid=p.messaging_service_sid,
                        body=p.body,
                        media_urls=() if isinstance(p, ReplyGenerated) else p.media_urls,
                        status_callback=self.status_callback,
                    )
            except TimeoutError:
                return Outcome("retry", error_message="Twilio did not answer in time")
            except SendError as exc:
                outcome = classify_error(exc.http_status, exc.code, exc.message)
                if outcome.kind == "retry" and exc.http_status == 429:
                    return Outcome(
                        "retry", error_code=20429, error_message=exc.message, not_taken=True
                    )
                return outcome
        return Outcome("sent", message_sid=accepted.message_sid, status=accepted.status)
