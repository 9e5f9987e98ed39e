"""A bounded pool of workers draining a Postgres work queue (an inbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_workers(
    count: int,
    step: Callable[[], Awaitable[bool]],
    wake: asyncio.Event,
    what: str,
    idle_s: float = 0.5,
) -> None:
    """Run ``count`` workers; each calls ``step`` until it reports no work, then sleeps until
    ``wake`` is set (new work recorded) or ``idle_s`` passes (work that became due)."""

    async def worker() -> None:
        while True:
            try:
                did = await step()
            except Exception:
                log.exception("%s failed; the item stays pending and is retried", what)
                did = False
                await asyncio.sleep(1.0)
            if not did:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), idle_s)

    await asyncio.gather(*(worker() for _ in range(count)))
