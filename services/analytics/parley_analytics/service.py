"""The analytics consumer: every topic into facts and hourly aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from uuid import UUID

from parley_analytics import (
    contacts,
    conversation_hours,
    forgetting,
    funnel,
    handoffs,
    store,
    tables,
)
from parley_shared import erasure
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    CallUpdated,
    ConversationChanged,
    EmailReceived,
    Envelope,
    HandoffChanged,
    MessageReceived,
    MessageSent,
    ParticipantErased,
    ReplyGenerated,
    StatusUpdated,
)
from parley_shared.keywords import asks_human, keyword_in
from parley_shared.projection import Projection
from parley_shared.settings import KeywordSettings
from parley_shared.tenancy import TenantsProjection

# Events that open, move, close or reopen conversations (``analytics_conversations``).
PLACED = (MessageReceived, ReplyGenerated, MessageSent, ConversationChanged)


class AnalyticsService(Projection):
    """Every topic into facts and hourly aggregates."""

    service: ClassVar[str] = tables.SERVICE
    erasable: ClassVar[bool] = True

    def __init__(self, pool: Pool, human: frozenset[str] | None = None) -> None:
        super().__init__(pool)
        # From the environment by default, so that a rebuild counts what the live service did.
        self.human = KeywordSettings().human_words if human is None else human
        self.on(MessageReceived, self.received)
        self.on(ConversationChanged, self.changed)
        self.on(ReplyGenerated, store.add_replies)
        self.on(MessageSent, self.sent)
        self.on(StatusUpdated, self.statuses, personal=False)
        self.on(HandoffChanged, handoffs.add_handoffs)
        self.on(CallUpdated, contacts.add_calls, personal=False)
        self.on(EmailReceived, contacts.add_emails, personal=False)
        self.on(ParticipantErased, erasure.follow(self.service, forgetting.forget))
        self.expiring(forgetting.expire)
        TenantsProjection(self.service).follow(self)

    async def apply_locked(self, conn: Connection, events: Sequence[Envelope]) -> None:
        keys = {e.conversation_key for e in events if isinstance(e.payload, PLACED)}
        before = await conversation_hours.snapshot(conn, keys) if keys else {}
        await super().apply_locked(conn, events)
        await self.settle(conn, events)
        if keys:
            after = await conversation_hours.snapshot(conn, keys)
            await conversation_hours.count_changes(conn, before, after)

    @staticmethod
    async def settle(conn: Connection, events: Sequence[Envelope]) -> None:
        """Once per batch, with every part of it written: what the outbound facts it touched
        add up to now (funnel, reply and delivery times), and the model's answer times."""
        ids: list[UUID] = []
        sids: set[str] = set()
        latencies = []
        for e in events:
            p = e.payload
            if isinstance(p, ReplyGenerated):
                ids.append(e.event_id)
                if p.source == "ai":
                    latencies.append(
                        (p.inbound_at, p.channel, p.our_address, "ai", float(p.latency_ms), 1)
                    )
            elif isinstance(p, MessageSent):
                ids.append(p.reply_event_id)
            elif isinstance(p, StatusUpdated):
                sids.add(p.message_sid)
        await funnel.settle_facts(conn, ids=ids, sids=sorted(sids), latencies=latencies)

    async def received(self, conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        opt_outs = [keyword_in(e.payload) == "opt_out" for e in events]
        await store.add_inbound(conn, events, opt_outs)
        await handoffs.add_requests(conn, [e for e in events if asks_human(e.payload, self.human)])

    @staticmethod
    async def sent(conn: Connection, events: Sequence[Envelope[MessageSent]]) -> None:
        await store.add_sent(conn, events)
        await handoffs.mark_people(conn, events)

    @staticmethod
    async def statuses(conn: Connection, events: Sequence[Envelope[StatusUpdated]]) -> None:
        await store.add_statuses(
            conn,
            [
                (e.payload.message_sid, e.payload.status, e.occurred_at, e.payload.error_code)
                for e in events
            ],
        )

    @staticmethod
    async def changed(conn: Connection, events: Sequence[Envelope[ConversationChanged]]) -> None:
        for event in events:
            p = event.payload
            if p.action == "closed":
                await store.close_conversation(
                    conn,
                    p.conversation_id,
                    event.conversation_key,
                    event.occurred_at,
                    p.channel,
                    p.our_address,
                )
            else:
                await store.reopen_conversation(conn, p.conversation_id)
