"""A projection: state built from events, each applied once, in a transaction with its
processed-event record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from parley_shared.db import Connection, Pool, first_time
from parley_shared.events import Envelope


class Projection:
    """Subclasses set ``service`` and implement ``apply``; ``pool`` is set by the subclass."""

    service: ClassVar[str]
    pool: Pool

    async def apply(self, conn: Connection, event: Envelope) -> None:
        raise NotImplementedError

    def applied(self) -> None:
        """Called after a transaction that changed state committed (e.g. to wake workers)."""

    async def handle(self, event: Envelope) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Envelope]) -> None:
        """Apply events in one transaction: one commit per batch, not per event, which is
        what makes replaying a long log fast. A repeat of an applied event is skipped."""
        async with self.pool.acquire() as conn, conn.transaction():
            for event in events:
                if await first_time(conn, self.service, event.event_id):
                    await self.apply(conn, event)
        self.applied()
