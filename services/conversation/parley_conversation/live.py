"""Live updates for the console: ``GET /v1/stream`` (server-sent events) says which of our
numbers have new activity, as the projection commits it.

Fed from the projection, not by polling: every transaction that applies events notifies
(``pg_notify``, delivered at commit) the numbers it touched, and each replica LISTENs on one
connection and fans the news out to its streams, so a stream hears about every partition,
whichever replica applied it. A stream sees only its tenant's numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from parley_shared.auth import UNAUTHORIZED
from parley_shared.db import Connection
from parley_shared.events import Envelope
from parley_shared.tenancy import Caller, Reader, caller

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)
KEEP_ALIVE_S = 15.0


def channel_of(schema: str | None) -> str:
    """One channel per database schema: isolated Parleys sharing a database stay apart."""
    return f"parley_conversations_{schema or 'public'}"


async def announce(conn: Connection, channel: str, events: Sequence[Envelope]) -> None:
    """Within the projection's transaction: the numbers these events touched."""
    touched = sorted({a for e in events if (a := getattr(e.payload, "our_address", None))})
    if touched:
        await conn.execute("SELECT pg_notify($1, $2)", channel, json.dumps(touched))


class Changes:
    """This replica's listener and the streams it feeds."""

    def __init__(self, database_url: str, channel: str) -> None:
        self._database_url = database_url
        self._channel = channel
        self._streams: set[asyncio.Queue[list[str]]] = set()

    async def listen(self) -> None:
        """Runs until the connection is lost (the caller restarts it)."""
        conn = await asyncpg.connect(self._database_url)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            await conn.add_listener(self._channel, self._received)
            await lost.wait()
        finally:
            await conn.close()
        raise ConnectionError("the LISTEN connection was lost")

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        touched = json.loads(str(payload))
        for queue in self._streams:
            with contextlib.suppress(asyncio.QueueFull):
                # A stream that does not keep up misses news; its next one refreshes it.
                queue.put_nowait(touched)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[list[str]]]:
        queue: asyncio.Queue[list[str]] = asyncio.Queue(maxsize=100)
        self._streams.add(queue)
        try:
            yield queue
        finally:
            self._streams.discard(queue)


async def _events(changes: Changes, who: Caller, request: Request) -> AsyncIterator[str]:
    with changes.subscribe() as queue:
        # Subscribed before the first bytes go out: a client that reads them and then loads
        # what it shows misses nothing in between.
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            try:
                touched = await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
            except TimeoutError:
                yield ": still here\n\n"
                continue
            visible = [a for a in touched if who.owns(a)]
            if visible:
                yield f"event: activity\ndata: {json.dumps({'numbers': visible})}\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(who: Reader, request: Request) -> StreamingResponse:
    """Server-sent events: an ``activity`` event (``{"numbers": [...]}``) whenever
    conversations on the caller's numbers change (messages, statuses, handoffs, closes)."""
    changes: Changes = request.state.changes
    return StreamingResponse(
        _events(changes, who, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
