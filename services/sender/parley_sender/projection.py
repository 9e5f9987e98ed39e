"""The sender's consumer side: replies and operators' messages to send, send outcomes,
opt-outs, closes and WhatsApp windows, from the log. It never calls Twilio."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from parley_sender import forgetting, store, tables
from parley_sender.pacing import Pacing, schedule
from parley_shared import erasure
from parley_shared.conversations import record_closes
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    ParticipantErased,
    ReplyGenerated,
)
from parley_shared.keywords import keyword_in
from parley_shared.projection import Projection
from parley_shared.sms import segments
from parley_shared.tenancy import TenantsProjection


class SenderProjection(Projection):
    """The consumer side: replies to send, outcomes and opt-outs; never calls Twilio."""

    service: ClassVar[str] = tables.SERVICE
    erasable: ClassVar[bool] = True

    def __init__(
        self,
        pool: Pool,
        on_work: Callable[[], None] | None = None,
        pace: Pacing | None = None,
        on_due: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(pool)
        self._on_work = on_work
        self._pace = pace or Pacing()
        self._on_due = on_due
        self.on(ReplyGenerated, self.replies)
        self.on(OutboundRequested, self.requests)
        self.on(MessageSent, self.outcomes)
        self.on(MessageReceived, self.inbound)
        self.on(ConversationChanged, self.changes)
        self.on(ParticipantErased, erasure.follow(self.service, forgetting.forget))
        self.expiring(forgetting.expire)
        TenantsProjection(self.service).follow(self)

    def wants(self, event: Envelope) -> bool:
        # Of the inbound messages only opt-out and opt-in keywords matter here, and WhatsApp
        # ones' times (the 24-hour window).
        if isinstance(event.payload, MessageReceived):
            return (
                keyword_in(event.payload) in ("opt_out", "opt_in")
                or event.payload.channel == "whatsapp"
            )
        return super().wants(event)

    async def replies(self, conn: Connection, events: Sequence[Envelope[ReplyGenerated]]) -> None:
        await store.add_replies(conn, events)
        self._due(
            await schedule(
                conn,
                self._pace,
                [(e.event_id, sender_of(e.payload), e.payload.segments) for e in events],
            )
        )

    async def requests(
        self, conn: Connection, events: Sequence[Envelope[OutboundRequested]]
    ) -> None:
        await store.add_requests(conn, events)
        self._due(
            await schedule(
                conn,
                self._pace,
                [(e.event_id, sender_of(e.payload), segments(e.payload.body)[0]) for e in events],
            )
        )

    def _due(self, delays: Sequence[float]) -> None:
        # Before the commit: at worst the worker looks once too early and finds nothing.
        if self._on_due is not None:
            for delay in delays:
                self._on_due(delay)

    @staticmethod
    async def outcomes(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
        await store.record_outcomes_from_log(conn, events)

    @staticmethod
    async def changes(conn: Connection, events: Sequence[Envelope[ConversationChanged]]) -> None:
        await record_closes(conn, tables.SERVICE, events)

    @staticmethod
    async def inbound(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        """Opt-out and opt-in keywords, and WhatsApp threads' last inbound times."""
        keywords = [(e, keyword_in(e.payload)) for e in events]
        await store.set_opt_outs(
            conn,
            [
                (e.conversation_key, keyword == "opt_out", e.occurred_at)
                for e, keyword in keywords
                if keyword in ("opt_out", "opt_in")
            ],
        )
        await store.record_inbound_times(
            conn,
            [
                (e.conversation_key, e.occurred_at)
                for e in events
                if e.payload.channel == "whatsapp"
            ],
        )

    def applied(self, events: Sequence[Envelope]) -> None:
        if self._on_work is not None and any(
            isinstance(e.payload, ReplyGenerated | OutboundRequested) for e in events
        ):
            self._on_work()


def sender_of(message: ReplyGenerated | OutboundRequested) -> str:
    """What Twilio paces by: the Messaging Service when there is one, else the number."""
    return message.messaging_service_sid or message.our_address
