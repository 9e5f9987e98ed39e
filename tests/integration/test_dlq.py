"""Dead letters: a poison event is set aside with its reason, listed, shown, and once the
handler is fixed, redriven and applied exactly once."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Sequence

from parley_dev.dlq import DeadLetter, read_dead_letters, run
from parley_shared import topics
from parley_shared.consumer import EventConsumer
from parley_shared.events import Envelope
from parley_shared.kafka import KafkaPublisher
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics
from tests.integration.test_bus import status


async def consume_until(consumer: EventConsumer, done: asyncio.Event) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        consumer.stop()
        await task


async def test_dead_letters_are_listed_shown_and_redriven(bus_settings: BusSettings) -> None:
    publisher = KafkaPublisher(bus_settings)
    poison, fine = status(1), status(2)
    await publisher.publish(topics.STATUS_UPDATED, poison)
    await publisher.publish(topics.STATUS_UPDATED, fine)
    physical = Topics(bus_settings.kafka_topic_prefix).name(topics.STATUS_UPDATED)
    await publisher.publish_raw(physical, key=b"k", value=b"\x00not an event")
    applied: list[Envelope] = []
    done = asyncio.Event()
    fixed = False

    async def handler(events: Sequence[Envelope]) -> None:
        if not fixed and any(e.event_id == poison.event_id for e in events):
            raise ValueError("this release cannot apply it")
        applied.extend(events)
        if any(e.event_id == (poison if fixed else fine).event_id for e in events):
            done.set()

    def consumer() -> EventConsumer:
        return EventConsumer(
            bus_settings,
            topics=[topics.STATUS_UPDATED],
            group_id="g-dlq",
            handler=handler,
            publisher=publisher,
            max_attempts=2,
        )

    await consume_until(consumer(), done)
    letters: list[DeadLetter] = []
    for _ in range(50):
        letters = await read_dead_letters(bus_settings, [topics.STATUS_UPDATED])
        if len(letters) == 2:
            break
        await asyncio.sleep(0.1)
    by_reason = {letter.header("parley-dlq-reason").split(":")[0]: letter for letter in letters}
    assert set(by_reason) == {"handler failed 2 times", "undecodable"}
    event_letter = by_reason["handler failed 2 times"]
    assert event_letter.header("parley-dlq-group") == "g-dlq"

    out = io.StringIO()
    listing = argparse.Namespace(command="list", topic=topics.STATUS_UPDATED)
    assert await run(listing, bus_settings, out) == 0
    assert "2 dead letter(s)" in out.getvalue()
    assert f"status.updated v1 {poison.event_id}" in out.getvalue()
    out = io.StringIO()
    assert await run(argparse.Namespace(command="show", id=event_letter.id), bus_settings, out) == 0
    assert "reason: handler failed 2 times" in out.getvalue()
    assert str(poison.event_id) in out.getvalue()
    missing = argparse.Namespace(command="show", id="status.updated.dlq/0/999")
    assert await run(missing, bus_settings, io.StringIO()) == 1

    # The fixed release: redrive just that letter; it is applied, the good event not again.
    fixed, done = True, asyncio.Event()
    redrive = argparse.Namespace(command="redrive", ids=[event_letter.id], all=False, topic=None)
    out = io.StringIO()
    assert await run(redrive, bus_settings, out) == 0
    assert "redrove 1 dead letter(s)" in out.getvalue()
    applied.clear()
    await consume_until(consumer(), done)
    assert [e.event_id for e in applied] == [poison.event_id]
    await publisher.stop()
