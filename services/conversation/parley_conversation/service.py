"""Handlers of the conversation service: project every topic into conversations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

from parley_conversation import store
from parley_shared import topics
from parley_shared.bus import BrokerUnavailable
from parley_shared.db import Connection, Pool, enqueue, first_time
from parley_shared.events import (
    ConversationChanged,
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
    new_envelope,
)
from parley_shared.keywords import keyword_of
from parley_shared.outbox import OutboxRelay
from parley_shared.projection import Projection


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


class ConversationService(Projection):
    """Projects every topic into threads, conversations and messages; takes operators'
    closes and reopens."""

    service: ClassVar[str] = store.SERVICE

    def __init__(self, pool: Pool, relay: OutboxRelay | None) -> None:
        super().__init__(pool)
        self.relay = relay
        self.on(MessageReceived, self.received)
        self.on(ConversationChanged, self.changed)
        self.on(ReplyGenerated, store.add_replies)
        self.on(MessageSent, store.record_sent)
        self.on(StatusUpdated, store.record_statuses)

    @staticmethod
    async def received(conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        await store.add_inbound(conn, events)
        for event in events:
            keyword = keyword_of(event.payload.body)
            if keyword in ("opt_out", "opt_in"):
                await store.set_opt_out(
                    conn, event.conversation_key, keyword == "opt_out", event.occurred_at
                )

    @classmethod
    async def changed(
        cls, conn: Connection, events: Sequence[Envelope[ConversationChanged]]
    ) -> None:
        for event in events:
            await cls._apply_change(conn, event)

    @staticmethod
    async def _apply_change(conn: Connection, event: Envelope[ConversationChanged]) -> None:
        p = event.payload
        await store.upsert_threads(conn, [store.thread_of(event)])
        if p.action == "closed":
            await store.close(conn, p.conversation_id, event.conversation_key, event.occurred_at)
        else:
            await store.reopen(conn, p.conversation_id)

    async def change(
        self, conversation: UUID, action: Literal["closed", "reopened"], actor: str
    ) -> None:
        """Close or reopen on an operator's request: state change and event, one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT c.conversation_key, c.closed_at, c.opened_at, t.channel, t.our_address,"
                " t.participant, t.account_sid FROM conversation_conversations c "
                "JOIN conversation_threads t USING (conversation_key) WHERE c.id = $1 "
                "FOR UPDATE OF c",
                conversation,
            )
            if row is None:
                raise NotFound(str(conversation))
            if action == "closed" and row["closed_at"] is not None:
                raise Conflict("conversation is already closed")
            if action == "reopened":
                if row["closed_at"] is None:
                    raise Conflict("conversation is open")
                newer = await conn.fetchval(
                    "SELECT 1 FROM conversation_conversations WHERE conversation_key = $1 "
                    "AND opened_at > $2",
                    row["conversation_key"],
                    row["opened_at"],
                )
                if newer:
                    raise Conflict("the participant has started a newer conversation since")
            event = new_envelope(
                ConversationChanged(
                    conversation_id=conversation,
                    action=action,
                    channel=row["channel"],
                    participant=row["participant"],
                    our_address=row["our_address"],
                    actor=actor,
                ),
                event_id=uuid4(),
                conversation_key=row["conversation_key"],
                account_sid=row["account_sid"],
                occurred_at=datetime.now(UTC),
            )
            await first_time(conn, store.SERVICE, event.event_id)
            await self._apply_change(conn, event)
            await enqueue(conn, store.SERVICE, [(topics.CONVERSATION_CHANGED, event)])
        if self.relay is not None:
            # Publish before answering, so the change is on the log before the operator (or
            # the participant) does anything next; the background relay covers a failure here.
            try:
                await self.relay.publish_pending()
            except BrokerUnavailable:
                self.relay.notify()
