"""A projection: state built from events, each applied once, in a transaction with its
processed-event record.

A projection registers handlers per payload type with ``on``; a handler gets the
connection and every new event of its type in the batch, already typed
(``Envelope[MessageReceived]``), so it can apply them with set-based SQL. One poll of the
consumer is one ``handle_batch``: one transaction, one statement to learn which events are
new, then one call per handler of each payload type present, in registration order. Handlers
must not depend on the order events of different topics are read in (a replay reads them in another
order than live processing did).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, cast

from parley_shared import retention
from parley_shared.db import Connection, Pool, first_seen, lock_keys
from parley_shared.erasure import erased_subjects, forgotten_for, subjects_of
from parley_shared.events import Envelope, P, Payload, RetentionApplied

Apply = Callable[[Connection, Sequence[Envelope[P]]], Awaitable[None]]


class Projection:
    """Subclasses set ``service`` and register their handlers in ``__init__``."""

    service: ClassVar[str]
    # Keeps participants' data, so forgets erased participants (``erasure``).
    erasable: ClassVar[bool] = False

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._handlers: dict[type[Payload], list[Apply[Any]]] = {}
        self._personal: set[type[Payload]] = set()
        self._expire: retention.Expire | None = None

    def on(self, kind: type[P], apply: Apply[P], *, personal: bool = True) -> None:
        """Apply events of ``kind`` with ``apply``, after the handlers registered before.
        ``personal=False``: ``apply`` reads none of the participant's sealed fields, so the
        events need not be opened for it."""
        self._handlers.setdefault(kind, []).append(cast("Apply[Any]", apply))
        if personal:
            self._personal.add(kind)

    def expiring(self, expire: retention.Expire) -> None:
        """Forget with ``expire`` what tenants' retention reached (``retention``)."""
        self._expire = expire
        self.on(RetentionApplied, retention.follow(self.service, expire))

    def reads_personal(self, event: Envelope) -> bool:
        """Whether a handler reads ``event``'s personal fields (``keyring.opener``)."""
        return type(event.payload) in self._personal

    def wants(self, event: Envelope) -> bool:
        """Whether an event changes this projection; others are not even recorded."""
        return type(event.payload) in self._handlers

    def applied(self, events: Sequence[Envelope]) -> None:
        """Called after a transaction that applied ``events`` committed (e.g. to wake workers)."""

    async def handle(self, event: Envelope) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Envelope]) -> None:
        wanted = [event for event in events if self.wants(event)]
        if not wanted:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            new = await first_seen(conn, self.service, [e.event_id for e in wanted])
            # A poll can hold the same event twice (a producer retried): apply it once.
            fresh: dict[Any, Envelope] = {}
            for event in wanted:
                if event.event_id in new:
                    fresh.setdefault(event.event_id, event)
            await self.apply(conn, list(fresh.values()))
        if fresh:
            self.applied(list(fresh.values()))

    async def apply(self, conn: Connection, events: Sequence[Envelope]) -> None:
        """Apply new events inside the caller's transaction (also used by rebuilds)."""
        # One transaction at a time per conversation, across replicas: two topics of one
        # conversation (a send outcome and its callbacks, a close and a message) may be
        # consumed by two replicas at once, and each would miss the other's uncommitted
        # rows. Whoever comes second waits, then sees what the first committed.
        keys = [e.conversation_key for e in events]
        if not self.erasable:
            await lock_keys(conn, self.service, keys)
            await self.apply_locked(conn, events)
            return
        # A participant's erasure or a retention and the events they reach, in any two
        # transactions, one after the other: each sees what the other did (``erasure``).
        # Only an erasure excludes; transactions with events of one participant in other
        # conversations (an SMS and a WhatsApp thread) may run side by side.
        erasing = erased_subjects(events)
        keys += [f"subject:{s}" for s in erasing]
        keys += retention.reached(events)
        await lock_keys(
            conn,
            self.service,
            keys,
            shared=[f"subject:{s}" for s in subjects_of(events) - erasing],
        )
        known = await forgotten_for(conn, self.service, events)
        await self.apply_locked(conn, known.applied_to(events))
        late = retention.late(known.horizons, events)
        if late and self._expire is not None:
            await self._expire(conn, late)

    async def apply_locked(self, conn: Connection, events: Sequence[Envelope]) -> None:
        """Run the handlers, with the events' conversations locked (what an override that
        reads their state before and after them needs)."""
        for kind, handlers in self._handlers.items():
            of_kind = [event for event in events if type(event.payload) is kind]
            if of_kind:
                for apply in handlers:
                    await apply(conn, of_kind)
