"""Handlers of the conversation service: project every topic into conversations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar
from uuid import UUID, uuid4

from parley_conversation import activity, agents, contacts, forgetting, live, store, tables
from parley_conversation.core import handoff_state, refuse_handoff, refuse_send
from parley_shared import erasure, topics
from parley_shared.bus import BrokerUnavailable
from parley_shared.db import Connection, Pool, enqueue, first_time, lock_keys
from parley_shared.events import (
    CallUpdated,
    ConversationChanged,
    EmailReceived,
    Envelope,
    HandoffChanged,
    MessageReceived,
    MessageSent,
    OutboundRequested,
    ParticipantErased,
    Payload,
    ReplyGenerated,
    StatusUpdated,
    new_envelope,
)
from parley_shared.identity import WHATSAPP_PREFIX, bare_number
from parley_shared.keyring import Keyring
from parley_shared.keywords import asks_human, keyword_in
from parley_shared.outbox import OutboxRelay
from parley_shared.projection import Projection
from parley_shared.settings import KeywordSettings
from parley_shared.tenancy import TenantsProjection
from parley_shared.whatsapp import window_open

Q = TypeVar("Q", bound=Payload)


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


class ConversationService(Projection):
    """Projects every topic into threads, conversations and messages; takes operators'
    closes and reopens."""

    service: ClassVar[str] = tables.SERVICE
    erasable: ClassVar[bool] = True

    def __init__(
        self,
        pool: Pool,
        relay: OutboxRelay | None,
        window_s: float = 86_400.0,
        human: frozenset[str] | None = None,
        live_channel: str | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        super().__init__(pool)
        self.relay = relay
        self.keyring = keyring
        # Where committed changes are announced to the console's live streams (live.py).
        self.live_channel = live_channel
        # From the environment by default, so that a rebuild flags what the live service did.
        self.human = KeywordSettings().human_words if human is None else human
        self.window_s = window_s  # WhatsApp's free-form window
        self.on(MessageReceived, self.received)
        self.on(ConversationChanged, self.changed)
        self.on(ReplyGenerated, store.add_replies)
        self.on(MessageSent, store.record_sent)
        self.on(StatusUpdated, store.record_statuses, personal=False)
        self.on(OutboundRequested, agents.add_requests)
        self.on(HandoffChanged, agents.add_handoffs)
        self.on(CallUpdated, contacts.add_calls)
        self.on(EmailReceived, contacts.add_emails)
        self.on(ParticipantErased, erasure.follow(self.service, forgetting.forget))
        self.expiring(forgetting.expire)
        TenantsProjection(self.service).follow(self)

    async def apply(self, conn: Connection, events: Sequence[Envelope]) -> None:
        await super().apply(conn, events)
        await activity.recompute(conn, events)
        if self.live_channel is not None:
            await live.announce(conn, self.live_channel, events)

    async def received(self, conn: Connection, events: Sequence[Envelope[MessageReceived]]) -> None:
        await store.add_inbound(conn, events)
        await agents.flag_requests(
            conn, [e.event_id for e in events if asks_human(e.payload, self.human)]
        )
        for event in events:
            keyword = keyword_in(event.payload)
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
            row = await self._locked(conn, conversation)
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
            event = self._event(
                row,
                ConversationChanged(
                    conversation_id=conversation,
                    action=action,
                    channel=row["channel"],
                    participant=row["participant"],
                    our_address=row["our_address"],
                    actor=actor,
                ),
            )
            await self.commit(conn, topics.CONVERSATION_CHANGED, event)
        await self.publish()

    async def send(
        self,
        conversation: UUID,
        body: str,
        media_urls: Sequence[str],
        agent: str,
        template: tuple[str, Mapping[str, str]] | None = None,
    ) -> Envelope[OutboundRequested]:
        """An operator's message (or WhatsApp template: content SID and variables): the
        sender sends it like a reply; the history shows it."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, conversation)
            refusal = refuse_send(
                row["closed_at"] is not None,
                row["opted_out"],
                window_open(
                    row["channel"], row["last_inbound_at"], datetime.now(UTC), self.window_s
                ),
                template is not None,
            )
            if refusal is not None:
                raise Conflict(refusal)
            event = self._event(
                row,
                OutboundRequested(
                    provider=row["provider"] or "twilio",
                    conversation_id=conversation,
                    channel=row["channel"],
                    participant=row["participant"],
                    our_address=row["our_address"],
                    body=body,
                    media_urls=tuple(media_urls),
                    content_sid=template[0] if template else None,
                    content_variables=dict(template[1]) if template else {},
                    agent=agent,
                ),
            )
            event = await self.commit(conn, topics.MESSAGE_REQUESTED, event)
        await self.publish()
        return event

    async def handoff(
        self, conversation: UUID, action: Literal["taken_over", "handed_back"], agent: str
    ) -> None:
        """A person takes the conversation over from the AI (paused for it), or hands back."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, conversation)
            refusal = refuse_handoff(handoff_state(row["handoff_action"]), action)
            if refusal is not None:
                raise Conflict(refusal)
            if row["closed_at"] is not None:
                raise Conflict("the conversation is closed")
            event = self._event(
                row,
                HandoffChanged(
                    conversation_id=conversation,
                    action=action,
                    channel=row["channel"],
                    participant=row["participant"],
                    our_address=row["our_address"],
                    agent=agent,
                ),
            )
            await self.commit(conn, topics.CONVERSATION_CHANGED, event)
        await self.publish()

    @staticmethod
    async def _locked(conn: Connection, conversation: UUID) -> Any:
        # The projection's lock on the thread first, then the row, in the order the
        # projection takes them (its writes lock conversation rows too): never the reverse.
        key = await conn.fetchval(
            "SELECT conversation_key FROM conversation_conversations WHERE id = $1", conversation
        )
        if key is None:
            raise NotFound(str(conversation))
        await lock_keys(conn, tables.SERVICE, [key])
        row = await conn.fetchrow(
            "SELECT c.conversation_key, c.closed_at, c.opened_at, t.channel, t.our_address,"
            " t.participant, t.account_sid, t.opted_out, t.provider, "
            f"h.handoff_action, {agents.LAST_INBOUND} AS last_inbound_at "
            "FROM conversation_conversations c JOIN conversation_threads t "
            f"USING (conversation_key) {agents.HANDOFF_JOIN} WHERE c.id = $1 FOR UPDATE OF c",
            conversation,
        )
        if row is None:
            raise NotFound(str(conversation))
        return row

    @staticmethod
    def _event(row: Any, payload: Q) -> Envelope[Q]:
        return new_envelope(
            payload,
            event_id=uuid4(),
            conversation_key=row["conversation_key"],
            account_sid=row["account_sid"],
            occurred_at=datetime.now(UTC),
        )

    async def commit(self, conn: Connection, topic: str, event: Envelope[Q]) -> Envelope[Q]:
        """Apply an operator's change here and queue it for the log, in the caller's
        transaction; returns it as applied."""
        if self.keyring is not None:
            # Whose it is, as the log will say once it is sealed: rows here name the same.
            (event,) = await self.keyring.stamp([event])
        await first_time(conn, tables.SERVICE, event.event_id)
        await self.apply(conn, [event])
        await enqueue(conn, tables.SERVICE, [(topic, event)])
        return event

    async def erase(
        self, participant: str, actor: str, numbers: frozenset[str] | None
    ) -> list[UUID]:
        """Forget a participant (right to be forgotten): delete their keys and say so on the
        log, one transaction. ``numbers``: a tenant may erase only a participant who wrote to
        no one else's number (the key is per account and phone number)."""
        bare = bare_number(participant)
        threads = await self.pool.fetch(
            "SELECT DISTINCT account_sid, our_address FROM conversation_threads "
            "WHERE participant = ANY($1::text[])",
            [bare, WHATSAPP_PREFIX + bare],
        )
        if not threads:
            raise NotFound(participant)
        if numbers is not None and any(
            bare_number(t["our_address"]) not in numbers for t in threads
        ):
            raise Conflict("the participant also wrote to numbers of another tenant")
        if self.keyring is None:
            raise RuntimeError("no keyring: this instance cannot erase")
        async with self.pool.acquire() as conn, conn.transaction():
            erased = await self.keyring.erase(
                conn, sorted({t["account_sid"] for t in threads}), bare
            )
            for subject, account in sorted(erased.items()):
                event = new_envelope(
                    ParticipantErased(subject=subject, actor=actor),
                    event_id=uuid4(),
                    conversation_key=f"participant_{subject}",
                    account_sid=account,
                    occurred_at=datetime.now(UTC),
                )
                await self.commit(conn, topics.PARTICIPANTS_CHANGED, event)
        await self.publish()
        return sorted(erased)

    async def publish(self) -> None:
        if self.relay is not None:
            # Publish before answering, so the change is on the log before the operator (or
            # the participant) does anything next; the background relay covers a failure here.
            try:
                await self.relay.publish_pending()
            except BrokerUnavailable:
                self.relay.notify()
