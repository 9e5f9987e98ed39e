"""Ports of the event bus: what handlers and entrypoints depend on, not how Kafka works."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from parley_shared.events import Envelope


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge a publish in time; the caller must not claim success."""


class Publisher(Protocol):
    async def publish(self, topic: str, event: Envelope) -> None:
        """Return only once the broker has acknowledged the event (acks=all).

        ``topic`` is the contract name (e.g. ``message.received``); adapters add any prefix.
        Raises BrokerUnavailable when that cannot be had.
        """
        ...

    async def publish_many(self, events: Sequence[tuple[str, Envelope]]) -> None:
        """Publish (topic, event) pairs, in order per key, and return once all are
        acknowledged; BrokerUnavailable when any is not."""
        ...


BatchHandler = Callable[[Sequence[Envelope]], Awaitable[None]]
# What a consumer does to a poll's events before its handler gets them (opening sealed
# fields), done while the previous poll is still being applied.
Preparer = Callable[[Sequence[Envelope]], Awaitable[list[Envelope]]]
