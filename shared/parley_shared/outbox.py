"""The outbox relay: publishes a service's outbox rows, in order, right after they commit.

Whoever commits outbox rows calls ``notify()``; the relay wakes at once, reads every pending
row, publishes them all (one acknowledgement wait for the lot, not one per row) and deletes
them in one statement. Publish first, then delete: a crash in between republishes the same
event ids, which every consumer drops. A slow timer covers rows another replica committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from parley_shared.bus import BrokerUnavailable, Publisher
from parley_shared.db import TRANSIENT_DB_ERRORS, Pool
from parley_shared.events import decode

log = logging.getLogger(__name__)

# The broker or the database is away for a while: pause, the rows stay.
PAUSES: tuple[type[Exception], ...] = (BrokerUnavailable, OSError, *TRANSIENT_DB_ERRORS)


class OutboxRelay:
    BATCH = 500

    def __init__(
        self, pool: Pool, service: str, publisher: Publisher, *, sweep_s: float = 2.0
    ) -> None:
        self._pool = pool
        self._service = service
        self._publisher = publisher
        self._sweep_s = sweep_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def notify(self) -> None:
        self._wake.set()

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish up to ``limit`` pending rows; returns how many were published."""
        async with self._lock:
            rows = await self._pool.fetch(
                f"SELECT id, topic, event FROM {self._service}_outbox ORDER BY id LIMIT $1",
                limit,
            )
            if not rows:
                return 0
            await self._publisher.publish_many(
                [(row["topic"], decode(row["event"])) for row in rows]
            )
            await self._pool.execute(
                f"DELETE FROM {self._service}_outbox WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
            return len(rows)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.publish_pending(self.BATCH) == self.BATCH:
                    pass
            except PAUSES as exc:
                log.warning("outbox relay of %s paused: %r", self._service, exc)
                await asyncio.sleep(1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sweep_s)
