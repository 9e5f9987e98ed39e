"""The analytics consumer: every topic into facts and hourly aggregates."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class AnalyticsService(Projection):
    service: ClassVar[str] = store.SERVICE

    pool: Pool

    async def apply(self, conn: Connection, event: Envelope) -> None:
        p = event.payload
        if isinstance(p, MessageReceived):
            await store.add_inbound(conn, event, keyword_of(p.body) == "opt_out")
        elif isinstance(p, ReplyGenerated):
            await store.add_reply(conn, event)
        elif isinstance(p, MessageSent):
            await store.add_sent(conn, event)
        elif isinstance(p, StatusUpdated):
            await store.add_status(conn, p.message_sid, p.status, event.occurred_at, p.error_code)
        elif isinstance(p, ConversationChanged):
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
