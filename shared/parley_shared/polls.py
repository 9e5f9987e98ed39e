"""A consumer's polls: fetched records, decoded, handed from the fetch stage to the apply
stage (``EventConsumer``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

from parley_shared.events import Envelope

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass(frozen=True)
class Poll:
    """Fetched records, decoded: what to apply, what to dead-letter, where to commit after."""

    events: list[tuple[Record, Envelope]] = field(default_factory=list)
    undecodable: list[tuple[Record, str]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    size: int = 0
    # Events of a version this reader does not know: not applied, not dead-lettered.
    too_new: list[tuple[Record, str]] = field(default_factory=list)

    def merged(self, later: Poll) -> Poll:
        return Poll(
            [*self.events, *later.events],
            [*self.undecodable, *later.undecodable],
            {**self.offsets, **later.offsets},
            self.size + later.size,
            [*self.too_new, *later.too_new],
        )


class Fetched:
    """What the fetch stage has decoded while the apply stage was busy, taken as one poll:
    under load polls grow (fewer, larger transactions); idle, a record is taken at once."""

    def __init__(self, limit: int) -> None:
        self._poll = Poll()
        self._limit = limit
        self.ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def add(self, poll: Poll) -> None:
        await self._room.wait()
        self._poll = self._poll.merged(poll)
        self.ready.set()
        if self._poll.size >= self._limit:
            self._room.clear()

    def take(self) -> Poll:
        poll, self._poll = self._poll, Poll()
        self.ready.clear()
        self._room.set()
        return poll
