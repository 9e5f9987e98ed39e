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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry import trace

from parley_sender import store
from parley_sender.core import (
    OPTED_OUT_CODE,
    Outcome,
    classify_error,
    next_try,
    pick_unclaimed,
)
from parley_sender.forms import Form, Template, as_template, form_for
from parley_sender.twilio_client import MessagingPort, SendError
from parley_shared import metrics, topics
from parley_shared.db import Pool
from parley_shared.events import (
    Envelope,
    MessageSent,
    OutboundRequested,
    ReplyGenerated,
    caused_by,
    decode,
)
from parley_shared.identity import derived_event_id
from parley_shared.leases import Claim
from parley_shared.tracing import with_traceparent
from parley_shared.whatsapp import OUTSIDE_WINDOW_CODE

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.sender")

GAVE_UP = "Twilio did not take the reply within the retry window (SENDER_RETRY_WINDOW_S)"


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
    last_inbound_at: datetime | None = None  # the participant's, as read here (WhatsApp)


@dataclass(frozen=True)
class Route:
    """How replies through one provider are sent, and where it reports on them."""

    messaging: MessagingPort
    status_callback: str


@dataclass
class OutgoingInbox:
    """The worker side (``parley_shared.leases.Inbox``): each reply sent once, through the
    provider its conversation's messages come through."""

    # By provider name ("twilio", "telnyx"): a provider with none cannot be sent through.
    routes: Mapping[str, Route]
    retry_window_s: float
    call_timeout_s: float
    lease_s: float
    on_settled: Callable[[], None] | None = None
    window_s: float = 86_400.0
    templates: Mapping[str, Template] = field(default_factory=dict)

    async def claim(self, pool: Pool, limit: int) -> list[Claim[Delivery]]:
        claims = []
        for row in sorted(await store.claim(pool, limit, self.lease_s), key=lambda r: r["seq"]):
            reply: Envelope[ReplyGenerated] | Envelope[OutboundRequested]
            reply = decode(row["event"])  # type: ignore[assignment]
            delivery = Delivery(
                reply=reply,
                attempts=row["attempts"],
                maybe_sent=row["was"] == "sending",
                sending_since=row["sending_since"],
                opted_out=row["opted_out"],
                closed=row["closed"],
                elapsed_s=row["elapsed_s"],
                overdue=row["elapsed_s"] > self.retry_window_s,
                last_inbound_at=row["last_inbound_at"],
            )
            claims.append(
                Claim(row["reply_event_id"], row["lease_token"], delivery, reply.traceparent)
            )
        return claims

    async def backlog(self, pool: Pool) -> tuple[int, float]:
        return await store.backlog(pool)

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
        provider = delivery.reply.payload.provider
        route = self.routes.get(provider)
        if route is None:
            # Its number is another provider's, which this sender has no credentials for.
            return Outcome(
                "failed",
                status="canceled",
                error_message=f"no {provider} sender configured; not sent",
            )
        return await self._attempt(delivery, route)

    async def record(
        self, pool: Pool, outcomes: Sequence[tuple[Claim[Delivery], Outcome]]
    ) -> list[float | None]:
        """Final outcomes are written together in one statement; retries (rare) one by one."""
        retries: list[float | None] = []
        final: list[store.Settled] = []
        for claim, outcome in outcomes:
            decided = await self._decide(pool, claim, outcome)
            if isinstance(decided, store.Settled):
                final.append(decided)
                retries.append(None)
                sent = decided.sent.payload
                what, code = decided.state, str(sent.error_code or "")
            else:
                retries.append(decided)
                what, code = "retry", str(outcome.error_code or "")
            metrics.count(
                "parley_sends",
                1,
                "Send attempts by outcome (sent, failed, skipped, retry) and Twilio error code",
                outcome=what,
                error_code=code,
            )
        if final:
            settled = await store.settle(pool, final)
            for lost in {s.reply_id for s in final} - settled:
                log.warning("lease on %s was lost before its outcome was recorded", lost)
            if settled and self.on_settled is not None:
                self.on_settled()
        return retries

    async def _decide(
        self, pool: Pool, claim: Claim[Delivery], outcome: Outcome
    ) -> store.Settled | float | None:
        """The final outcome to record, or (the retry was scheduled here) seconds until it is
        due, or None if the lease was lost meanwhile."""
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
        return self._settled(claim, outcome)

    @staticmethod
    def _settled(claim: Claim[Delivery], outcome: Outcome) -> store.Settled:
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
                provider=p.provider,
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
                content_sid=outcome.content_sid,
            ),
            event_id=derived_event_id(topics.MESSAGE_SENT, reply.event_id),
            occurred_at=datetime.now(UTC),
        )
        # The same time a rebuild reads from the event.
        opt_out = (
            (reply.conversation_key, sent.occurred_at) if store.unsubscribed(sent.payload) else None
        )
        return store.Settled(claim.id, claim.token, state, sent, opt_out)

    async def _attempt(self, delivery: Delivery, route: Route) -> Outcome:
        p = delivery.reply.payload
        template = self.templates.get(p.our_address)
        form = form_for(p, delivery.last_inbound_at, datetime.now(UTC), self.window_s, template)
        if isinstance(form, Outcome):
            return form
        since = delivery.sending_since or datetime.now(UTC)
        # Named after the provider it goes through ("twilio.send", "telnyx.send").
        with tracer.start_as_current_span(
            f"{p.provider}.send", attributes={"parley.provider": p.provider}
        ):
            if delivery.maybe_sent:
                try:
                    # The twilio SDK's async client ignores its own time-out: these are real.
                    async with asyncio.timeout(self.call_timeout_s):
                        found = await route.messaging.find_sent(
                            to=p.participant,
                            # Twilio renders a template's text: any message to them counts.
                            body=None if form.content_sid else form.body,
                            since=since - timedelta(seconds=5),
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
            outcome = await self._send(delivery.reply, form, route)
            fallback = as_template(p.body, template)
            if (
                outcome.error_code == OUTSIDE_WINDOW_CODE
                and form.content_sid is None
                and fallback is not None
            ):
                # Twilio knows the window best; it refused the text, so nothing went out.
                outcome = await self._send(delivery.reply, fallback, route)
        return outcome

    async def _send(
        self,
        reply: Envelope[ReplyGenerated] | Envelope[OutboundRequested],
        form: Form,
        route: Route,
    ) -> Outcome:
        p = reply.payload
        try:
            async with asyncio.timeout(self.call_timeout_s):
                accepted = await route.messaging.send(
                    to=p.participant,
                    from_=p.our_address,
                    messaging_service_sid=p.messaging_service_sid,
                    body=form.body,
                    media_urls=() if isinstance(p, ReplyGenerated) else p.media_urls,
                    status_callback=with_traceparent(route.status_callback),
                    content_sid=form.content_sid,
                    content_variables=form.variables,
                    # One key per reply and form: a template sent after a refused text is
                    # another message.
                    idempotency_key=f"{reply.event_id}/{form.content_sid or 'text'}",
                )
        except TimeoutError:
            return Outcome("retry", error_message="Twilio did not answer in time")
        except SendError as exc:
            outcome = classify_error(exc.http_status, exc.code, exc.message)
            if outcome.kind == "retry" and exc.http_status == 429:
                return Outcome("retry", error_code=20429, error_message=exc.message, not_taken=True)
            return outcome
        return Outcome(
            "sent",
            message_sid=accepted.message_sid,
            status=accepted.status,
            content_sid=form.content_sid,
        )
