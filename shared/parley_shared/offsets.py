"""Offset commits off the apply path: a consumer hands over what it applied and goes on.

Committing after every poll put a broker round trip between one apply and the next, and under
load made a commit request per poll (dozens a second per consumer, each costing the broker as
much as a fetch). Offsets only say where a restarted group resumes; redelivered events are
dropped by their ids. So the committer commits what was applied in the background, at most
one commit every ``interval_s``, the latest offset of each partition, and what is not yet
confirmed stays pending until it is: a commit cut short by a stop is made again on close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

log = logging.getLogger(__name__)


class OffsetCommitter:
    def __init__(self, consumer: AIOKafkaConsumer, interval_s: float) -> None:
        self._consumer = consumer
        self._interval_s = interval_s
        self._pending: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def applied(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Offsets whose events are applied (durably): to be committed soon."""
        if offsets:
            self._pending.update(offsets)
            self._wake.set()

    async def close(self) -> None:
        """Stop, committing whatever was applied and is not confirmed yet."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._commit_pending()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit_pending()
            await asyncio.sleep(self._interval_s)

    async def _commit_pending(self) -> None:
        offsets = dict(self._pending)
        if not offsets:
            return
        # A rebalance may have taken partitions since their events were applied: their new
        # owner resumes from the last commit and drops what it redelivers.
        held = self._consumer.assignment()
        owned = {partition: at for partition, at in offsets.items() if partition in held}
        try:
            if owned:
                await self._consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit failed: %s", exc)
        except KafkaError as exc:
            # The broker is unreachable for now: keep the offsets and try again.
            log.warning("commit failed, retrying: %r", exc)
            self._wake.set()
            return
        for partition, at in offsets.items():
            if self._pending.get(partition) == at:
                del self._pending[partition]
