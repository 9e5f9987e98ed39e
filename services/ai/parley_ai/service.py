"""Handlers of the ai service: the projection records what the log says; the replies inbox
answers pending messages under leases, one model call per message, no connection held."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from opentelemetry import trace

from parley_ai import forgetting, handoffs, number_settings, store, tables
from parley_ai.core import (
    Behaviour,
    NumberConfig,
    Persona,
    Turn,
    behaviour_for,
    chat_messages,
    reason_not_to_answer,
    shape_reply,
    user_text,
)
from parley_ai.llm import Completion, Responder, ResponderFailed
from parley_ai.settings import RateLimitSettings
from parley_shared import erasure, metrics, topics
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    AiSettingsChanged,
    ConversationChanged,
    Envelope,
    HandoffChanged,
    MessageReceived,
    ParticipantErased,
    ReplyGenerated,
    ReplySource,
    caused_by,
    decode,
)
from parley_shared.identity import derived_event_id
from parley_shared.keywords import HUMAN, keyword_in
from parley_shared.leases import Claim
from parley_shared.prices import ModelPrice
from parley_shared.projection import Projection
from parley_shared.settings import KeywordSettings
from parley_shared.tenancy import TenantsProjection

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.ai")


class AiProjection(Projection):
    """The consumer side: what the log says, recorded; no model calls, so it also rebuilds."""

    service: ClassVar[str] = tables.SERVICE
    erasable: ClassVar[bool] = True

    def __init__(
        self,
        pool: Pool,
        on_work: Any = None,
        rate_limit_per_minute: int | None = None,
        human: frozenset[str] | None = None,
    ) -> None:
        super().__init__(pool)
        self._on_work = on_work
        self.human = KeywordSettings().human_words if human is None else human
        # From the environment by default, so that a rebuild limits as the live service did.
        self.rate_limit_per_minute = (
            RateLimitSettings().ai_rate_limit_per_minute
            if rate_limit_per_minute is None
            else rate_limit_per_minute
        )
        self.on(MessageReceived, self.received)
        self.on(ConversationChanged, self.changed)
        self.on(ReplyGenerated, self.replied)
        self.on(HandoffChanged, handoffs.record_handoff_changes)
        self.on(AiSettingsChanged, number_settings.record)
        self.on(ParticipantErased, erasure.follow(self.service, forgetting.forget))
        self.expiring(forgetting.expire)
        TenantsProjection(self.service).follow(self)

    async def received(self, conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        rows = []
        for event in events:
            keyword = keyword_in(event.payload)
            # Keywords precede this message on its own partition, so what they decide is the
            # same live and on a replay; closes (another topic) are checked by the worker.
            skip = reason_not_to_answer(event.payload, False, human=self.human)
            rows.append(
                (
                    event,
                    f"keyword:{keyword}" if keyword else skip,
                    # An erased message leaves no turn: none is left of one erased later.
                    None if keyword or skip == "erased" else user_text(event.payload),
                )
            )
        await store.record_inbound(conn, rows, self.rate_limit_per_minute)

    @staticmethod
    async def changed(conn: Connection, events: Sequence[Envelope[ConversationChanged]]) -> None:
        await store.record_changes(conn, events)

    @staticmethod
    async def replied(conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
        await store.record_replies(conn, events)

    def applied(self, events: Sequence[Envelope]) -> None:
        if self._on_work is not None and any(
            isinstance(e.payload, MessageReceived)
            or (isinstance(e.payload, ConversationChanged) and e.payload.action == "reopened")
            or (isinstance(e.payload, HandoffChanged) and e.payload.action == "handed_back")
            for e in events
        ):
            self._on_work()


@dataclass(frozen=True)
class Question:
    """A leased inbound message and what its answer depends on, read when it was claimed."""

    inbound: Envelope[MessageReceived]
    history: list[Turn]
    skip: str | None
    behaviour: Behaviour


@dataclass
class RepliesInbox:
    """The worker side (``parley_shared.leases.Inbox``): one reply per inbound message."""

    responder: Responder
    defaults: Behaviour
    numbers: Mapping[str, NumberConfig]  # the file's defaults per number
    deadline_s: float
    lease_s: float
    on_reply: Any = None
    human: frozenset[str] = HUMAN
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    async def claim(self, pool: Pool, limit: int) -> list[Claim[Question]]:
        claims = []
        # Operators' settings as they are now: a change applies to the next message claimed.
        api = await number_settings.current(pool)
        turns = max(
            [
                self.defaults.history_turns,
                *(c.history_turns or 0 for c in (*self.numbers.values(), *api.values())),
            ]
        )
        for row in await store.claim(pool, limit, self.lease_s, turns):
            inbound: Envelope[MessageReceived] = decode(row["event"])  # type: ignore[assignment]
            behaviour = behaviour_for(inbound.payload.our_address, self.defaults, self.numbers, api)
            skip = reason_not_to_answer(
                inbound.payload,
                row["closed"],
                row["opted_out"],
                row["handed_off"],
                self.human,
                behaviour.enabled,
            )
            history = store.history_of(row)
            kept = (
                history[len(history) - behaviour.history_turns :] if behaviour.history_turns else []
            )
            question = Question(inbound, kept, skip, behaviour)
            claims.append(Claim(row["event_id"], row["lease_token"], question, inbound.traceparent))
        return claims

    async def backlog(self, pool: Pool) -> tuple[int, float]:
        return await store.backlog(pool)

    async def perform(self, claim: Claim[Question]) -> Envelope[ReplyGenerated] | str:
        """The reply event, or why there is none (no model call for those)."""
        question = claim.work
        if question.skip is not None:
            return question.skip
        message = question.inbound.payload
        persona = question.behaviour.persona
        prompt = chat_messages(persona, message.channel, question.history, user_text(message))
        with tracer.start_as_current_span("ai.complete", attributes={"model": persona.model}):
            completion, source = await self._complete(
                persona, prompt, question.behaviour.fallback_reply
            )
        return self._reply_event(question.inbound, completion, source)

    async def record(
        self, pool: Pool, outcomes: Sequence[tuple[Claim[Question], Envelope[ReplyGenerated] | str]]
    ) -> list[float | None]:
        states = await store.record_outcomes(
            pool,
            [
                store.Outcome(
                    claim.work.inbound,
                    claim.token,
                    reply=None if isinstance(outcome, str) else outcome,
                    skip=outcome if isinstance(outcome, str) else None,
                )
                for claim, outcome in outcomes
            ],
        )
        for claim, _ in outcomes:
            if claim.id not in states:
                log.warning("lease on %s was lost; its new owner answers it", claim.id)
        if "done" in states.values() and self.on_reply is not None:
            self.on_reply()
        return [None] * len(outcomes)

    async def _complete(
        self, persona: Persona, messages: list[dict[str, str]], fallback_reply: str
    ) -> tuple[Completion, ReplySource]:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadline_s):
                completion = await self.responder.complete(persona, messages)
        except (ResponderFailed, TimeoutError) as exc:
            log.warning("model failed, sending the fallback reply: %r", exc)
            kind = "timeout" if isinstance(exc, TimeoutError) else exc.kind
            metrics.count("parley_model_failures", 1, "Model calls that failed", kind=kind)
            metrics.count("parley_replies", 1, "Replies by source", source="fallback")
            return Completion(fallback_reply, persona.model, 0, 0, 0), "fallback"
        source: ReplySource = "offline" if self.responder.offline else "ai"
        metrics.observe(
            "parley_model_duration",
            time.perf_counter() - began,
            "Model calls, from request to answer",
            model=completion.model,
        )
        for kind, tokens in (
            ("prompt", completion.prompt_tokens),
            ("completion", completion.completion_tokens),
        ):
            metrics.count(
                "parley_model_tokens", tokens, "Tokens used", model=completion.model, kind=kind
            )
        price = self.prices.get(completion.model)
        if price is not None:
            metrics.count(
                "parley_model_cost_usd",
                price.cost_usd(completion.prompt_tokens, completion.completion_tokens),
                "What the model's tokens cost, in US dollars (MODEL_PRICES)",
                model=completion.model,
            )
        metrics.count("parley_replies", 1, "Replies by source", source=source)
        return completion, source

    @staticmethod
    def _reply_event(
        inbound: Envelope[MessageReceived], completion: Completion, source: ReplySource
    ) -> Envelope[ReplyGenerated]:
        message = inbound.payload
        body, segments, encoding = shape_reply(completion.text, message.channel)
        payload = ReplyGenerated(
            provider=message.provider,
            in_reply_to=inbound.event_id,
            inbound_message_sid=message.message_sid,
            inbound_at=inbound.occurred_at,
            channel=message.channel,
            participant=message.participant,
            our_address=message.our_address,
            messaging_service_sid=message.messaging_service_sid,
            body=body,
            source=source,
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=completion.latency_ms,
            segments=segments,
            encoding=encoding,
        )
        return caused_by(
            inbound,
            payload,
            # One reply per inbound message, whatever happens: the id says so.
            event_id=derived_event_id(topics.REPLY_GENERATED, inbound.event_id),
            occurred_at=datetime.now(UTC),
        )
