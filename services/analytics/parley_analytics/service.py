"""The analytics consumer: every topic into facts and hourly aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from parley_analytics import store
from parley_shared.db import Connection, Pool
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
)
from parley_shared.keywords import keyword_of
from parley_shared.projection import Projection


class AnalyticsService(Projection):
    """Every topic into facts and hourly aggregates."""

    service: ClassVar[str] = store.SERVICE

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.on(MessageReceived, self.received)
        self.on(ConversationChanged, self.changed)
        self.on(ReplyGenerated, store.add_replies)
        self.on(MessageSent, store.add_sent)
        self.on(StatusUpdated, self.statuses)

    @staticmethod
    async def received(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        opt_outs = [keyword_of(e.payload.body) == "opt_out" for e in events]
        await store.add_inbound(conn, events, opt_outs)

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
