"""Handlers of the conversation service: project every topic into conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

from parley_conversation import store
from parley_shared import topics
from parley_shared.bus import BrokerUnavailable
from parley_shared.db import Connection, OutboxRelay, Pool, enqueue, first_time
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
from parley_shared.projection import Projection


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


@dataclass
class ConversationService(Projection):
    service: ClassVar[str] = store.SERVICE

    pool: Pool
    relay: OutboxRelay | None

    async def apply(self, conn: Connection, event: Envelope) -> None:
        p = event.payload
        if isinstance(p, MessageReceived):
            await store.add_inbound(conn, event)
            keyword = keyword_of(p.body)
            if keyword in ("opt_out", "opt_in"):
                await store.set_opt_out(
                    conn, event.conversation_key, keyword == "opt_out", event.occurred_at
                )
        elif isinstance(p, ReplyGenerated):
            await store.add_reply(conn, event)
        elif isinstance(p, MessageSent):
            await store.record_sent(conn, event)
        elif isinstance(p, StatusUpdated):
            await store.record_status(
                conn, p.message_sid, p.status, event.occurred_at, p.error_code
            )
        elif isinstance(p, ConversationChanged):
            await self._apply_change(conn, event)

    @staticmethod
    async def _apply_change(conn: Connection, event: Envelope) -> None:
        p = event.payload
        assert isinstance(p, ConversationChanged)
        await store.upsert_thread(conn, event, p.channel, p.our_address, p.participant, None)
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
            await enqueue(conn, store.SERVICE, topics.CONVERSATION_CHANGED, event)
        if self.relay is not None:
            # Publish before answering, so the change is on the log before the operator (or
            # the participant) does anything next; the background relay covers a failure here.
            try:
                await self.relay.publish_pending()
            except BrokerUnavailable:
                self.relay.notify()
