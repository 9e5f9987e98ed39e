"""Handlers of the ai service: record what the log says, and answer pending messages."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from opentelemetry import trace

from parley_ai import store
from parley_ai.core import (
    NumberConfig,
    Persona,
    chat_messages,
    persona_for,
    reason_not_to_answer,
    shape_reply,
    user_text,
)
from parley_ai.llm import Completion, Responder, ResponderFailed
from parley_shared import topics
from parley_shared.db import Connection, OutboxRelay, Pool, enqueue
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    ReplyGenerated,
    ReplySource,
    caused_by,
    decode,
)
from parley_shared.identity import derived_event_id
from parley_shared.keywords import keyword_of
from parley_shared.projection import Projection
from parley_shared.workers import run_workers

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.ai")


@dataclass
class AiProjection(Projection):
    """The consumer side: what the log says, recorded; no model calls, so it also rebuilds."""

    service: ClassVar[str] = store.SERVICE
    pool: Pool
    work: asyncio.Event = field(default_factory=asyncio.Event)

    async def apply(self, conn: Connection, event: Envelope) -> None:
        payload = event.payload
        if isinstance(payload, MessageReceived):
            keyword = keyword_of(payload.body)
            if keyword in ("opt_out", "opt_in"):
                await store.record_keyword(conn, event, keyword == "opt_out")
            # Keywords precede this message on its own partition, so what they decide is
            # the same live and on a replay; a close (another topic) waits for the worker.
            opted_out = await store.opted_out_at(conn, event.conversation_key, event.occurred_at)
            skip = reason_not_to_answer(payload, False, opted_out)
            await store.record_inbound(
                conn,
                event,
                state="skipped" if skip else "pending",
                reason=skip,
                user_text=None if keyword else user_text(payload),
            )
        elif isinstance(payload, ReplyGenerated):
            await store.record_reply(conn, event)
        elif isinstance(payload, ConversationChanged):
            await store.record_change(conn, event)

    def applied(self) -> None:
        self.work.set()


@dataclass
class AiService:
    """The worker side: answers pending messages, at most ``max_in_flight`` at a time."""

    pool: Pool
    responder: Responder
    relay: OutboxRelay
    defaults: Persona
    numbers: dict[str, NumberConfig]
    history_turns: int
    fallback_reply: str
    max_in_flight: int
    projection: AiProjection
    settle_s: float = 0.0

    @property
    def _work(self) -> asyncio.Event:
        return self.projection.work

    async def handle(self, event: Envelope) -> None:
        await self.projection.handle(event)

    async def run_workers(self) -> None:
        await run_workers(self.max_in_flight, self.answer_one, self._work, "answering")

    async def answer_one(self) -> bool:
        """Answer the oldest answerable message; False when there was none."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.claim_next(conn, self.settle_s)
            if row is None:
                return False
            self._work.set()  # there may be more: let another worker look
            inbound = decode(row["event"])
            assert isinstance(inbound.payload, MessageReceived)
            message = inbound.payload
            closed = await store.closed_at_time(conn, inbound.conversation_key, inbound.occurred_at)
            opted_out = await store.opted_out_at(
                conn, inbound.conversation_key, inbound.occurred_at
            )
            skip = reason_not_to_answer(message, closed, opted_out)
            if skip is not None:
                await store.finish(conn, inbound.event_id, "skipped", skip, None)
                return True
            past = await store.history(
                conn, inbound.conversation_key, inbound.occurred_at, self.history_turns
            )
            persona = persona_for(message.our_address, self.defaults, self.numbers)
            with tracer.start_as_current_span("ai.complete", attributes={"model": persona.model}):
                completion, source = await self._complete(
                    persona, chat_messages(persona, message.channel, past, user_text(message))
                )
            reply = self._reply_event(inbound, message, completion, source)
            await enqueue(conn, "ai", topics.REPLY_GENERATED, reply)
            await store.finish(conn, inbound.event_id, "done", None, reply.event_id)
            assert isinstance(reply.payload, ReplyGenerated)
            await store.add_turn(
                conn,
                reply.event_id,
                inbound.conversation_key,
                inbound.occurred_at,
                "assistant",
                reply.payload.body,
            )
        self.relay.notify()
        return True

    async def _complete(
        self, persona: Persona, messages: list[dict[str, str]]
    ) -> tuple[Completion, ReplySource]:
        try:
            completion = await self.responder.complete(persona, messages)
        except ResponderFailed as exc:
            log.warning("model failed after retries, sending the fallback reply: %s", exc)
            return Completion(self.fallback_reply, persona.model, 0, 0, 0), "fallback"
        return completion, "offline" if self.responder.offline else "ai"

    @staticmethod
    def _reply_event(
        inbound: Envelope, message: MessageReceived, completion: Completion, source: ReplySource
    ) -> Envelope:
        body, segments, encoding = shape_reply(completion.text, message.channel)
        payload = ReplyGenerated(
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
