"""An in-memory bus with the Publisher interface, for fast unit tests of handlers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from parley_shared.bus import BrokerUnavailable
from parley_shared.events import Envelope, decode, encode


class InMemoryBus:
    def __init__(self) -> None:
        self.topics: dict[str, list[Envelope]] = defaultdict(list)
        self.available = True

    async def publish(self, topic: str, event: Envelope) -> None:
        if not self.available:
            raise BrokerUnavailable("in-memory broker switched off")
        # Round-trip through the wire format so tests catch what would not survive Kafka.
        self.topics[topic].append(decode(encode(event)))

    async def publish_many(self, events: Sequence[tuple[str, Envelope]]) -> None:
        for topic, event in events:
            await self.publish(topic, event)

    def events(self, topic: str) -> list[Envelope]:
        return list(self.topics[topic])
