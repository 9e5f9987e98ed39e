"""The offset committer: what consumers applied is committed in the background, coalesced."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from parley_shared import topics
from parley_shared.kafka import ensure_topics
from parley_shared.offsets import OffsetCommitter
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics


async def assigned_consumer(bus_settings: BusSettings, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        Topics(bus_settings.kafka_topic_prefix).name(topics.STATUS_UPDATED),
        bootstrap_servers=bus_settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=bus_settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=bus_settings.kafka_heartbeat_interval_ms,
    )
    await consumer.start()
    for _ in range(200):
        await consumer.getmany(timeout_ms=50)
        if consumer.assignment():
            return consumer
    raise AssertionError("no partitions assigned")


async def test_applied_offsets_are_committed_coalesced_and_on_close(
    bus_settings: BusSettings,
) -> None:
    await ensure_topics(bus_settings)
    consumer = await assigned_consumer(bus_settings, "offsets-1")
    partition = sorted(consumer.assignment())[0]
    commits: list[Mapping[TopicPartition, int]] = []
    commit = consumer.commit

    async def counted(offsets: Mapping[TopicPartition, int]) -> None:
        commits.append(dict(offsets))
        await commit(offsets)

    consumer.commit = counted  # type: ignore[method-assign]
    committer = OffsetCommitter(consumer, interval_s=2.0)
    committer.start()
    try:
        # Twenty polls applied within the interval, each after the previous commit could have
        # been made: the first is committed at once, the others wait for the interval and go
        # as one commit of the latest offset.
        for offset in range(1, 21):
            committer.applied({partition: offset})
            await asyncio.sleep(0.01)
        for _ in range(200):
            if await consumer.committed(partition) == 20:
                break
            await asyncio.sleep(0.05)
        assert await consumer.committed(partition) == 20
        assert len(commits) == 2, commits
        assert commits[-1] == {partition: 20}
        # Applied just before a stop: committed by close, not lost with the interval.
        committer.applied({partition: 21})
        await committer.close()
        assert await consumer.committed(partition) == 21
    finally:
        await consumer.stop()


async def test_offsets_of_partitions_no_longer_held_are_not_committed(
    bus_settings: BusSettings,
) -> None:
    await ensure_topics(bus_settings)
    consumer = await assigned_consumer(bus_settings, "offsets-2")
    held = sorted(consumer.assignment())[0]
    elsewhere = TopicPartition("not-this-consumers-topic", 0)
    committer = OffsetCommitter(consumer, interval_s=0.0)
    try:
        # A rebalance took a partition between its apply and the commit: its new owner
        # resumes from the last commit; the partitions still held are committed as usual.
        committer.applied({held: 3, elsewhere: 9})
        await committer.close()
        assert await consumer.committed(held) == 3
    finally:
        await consumer.stop()
