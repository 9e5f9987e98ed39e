"""Dead letters: list them, show one with its reason, redrive them to their source topic.

    ./dev dlq list [--topic message.received]
    ./dev dlq show message.received.dlq/0/12
    ./dev dlq redrive message.received.dlq/0/12 …   |   ./dev dlq redrive --all [--topic T]

(``python -m parley_dev.dlq`` in a Parley image.) A consumer dead-letters only what it can
never apply: bytes that are not an event, or an event its handler kept rejecting. Once a
release that can read it is deployed, redrive it: the original key, value and headers go back
to the source topic (with ``parley-redriven-from``), and every consumer applies it once —
those that had already applied it drop it by event id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from parley_shared import topics
from parley_shared.events import DecodeError, decode
from parley_shared.kafka import KafkaPublisher
from parley_shared.settings import BusSettings
from parley_shared.topics import Topics


@dataclass(frozen=True)
class DeadLetter:
    source: str  # the contract topic it came from
    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        return f"{self.source}{topics.DEAD_LETTER_SUFFIX}/{self.partition}/{self.offset}"

    def header(self, name: str) -> str:
        return next((v.decode("utf-8", "replace") for k, v in self.headers if k == name), "")

    def summary(self) -> str:
        try:
            event = decode(self.value or b"")
            what = f"{event.event_type} v{event.schema_version} {event.event_id}"
        except DecodeError:
            what = f"{len(self.value or b'')} bytes, not an event"
        return (
            f"{self.id}  {self.at:%Y-%m-%dT%H:%M:%SZ}  group={self.header('parley-dlq-group')}"
            f"  {what}\n    reason: {self.header('parley-dlq-reason')[:200]}"
        )


async def read_dead_letters(settings: BusSettings, sources: Sequence[str]) -> list[DeadLetter]:
    """Every record of the dead-letter topics of ``sources``, oldest first per partition."""
    names = Topics(settings.kafka_topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        partitions = [
            TopicPartition(names.dead_letter(source), p)
            for source in sources
            for p in sorted(consumer.partitions_for_topic(names.dead_letter(source)) or ())
        ]
        if not partitions:
            return letters
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        positions = {tp: await consumer.position(tp) for tp in partitions}
        while any(positions[tp] < ends[tp] for tp in partitions):
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        letters.append(
                            DeadLetter(
                                source=names.logical(tp.topic).removesuffix(
                                    topics.DEAD_LETTER_SUFFIX
                                ),
                                partition=tp.partition,
                                offset=record.offset,
                                at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
                                key=record.key,
                                value=record.value,
                                headers=tuple(record.headers or ()),
                            )
                        )
                positions[tp] = await consumer.position(tp)
    finally:
        await consumer.stop()
    return letters


async def redrive(settings: BusSettings, letters: Sequence[DeadLetter]) -> int:
    """Publish each letter's original record to its source topic; returns how many."""
    publisher = KafkaPublisher(settings)
    names = Topics(settings.kafka_topic_prefix)
    try:
        for letter in letters:
            headers = [(k, v) for k, v in letter.headers if not k.startswith("parley-dlq-")]
            await publisher.publish_raw(
                names.name(letter.source),
                key=letter.key,
                value=letter.value,
                headers=[*headers, ("parley-redriven-from", letter.id.encode())],
            )
    finally:
        await publisher.stop()
    return len(letters)


async def run(args: argparse.Namespace, settings: BusSettings, out: TextIO) -> int:
    sources = [args.topic] if getattr(args, "topic", None) else list(topics.ALL)
    if args.command == "show" or (args.command == "redrive" and args.ids):
        ids = [args.id] if args.command == "show" else args.ids
        wanted = {i.split(".dlq/", 1)[0] for i in ids if ".dlq/" in i}
        letters = {
            letter.id: letter for letter in await read_dead_letters(settings, sorted(wanted))
        }
        missing = [i for i in ids if i not in letters]
        if missing:
            out.write(f"no such dead letter: {', '.join(missing)}\n")
            return 1
        chosen = [letters[i] for i in ids]
    else:
        chosen = await read_dead_letters(settings, sources)
    if args.command == "list":
        for letter in chosen:
            out.write(letter.summary() + "\n")
        out.write(f"{len(chosen)} dead letter(s)\n")
    elif args.command == "show":
        [letter] = chosen
        out.write(letter.summary() + "\n")
        for name, value in letter.headers:
            out.write(f"    header {name}: {value.decode('utf-8', 'replace')}\n")
        out.write((letter.value or b"").decode("utf-8", "replace") + "\n")
    else:
        if not args.ids and not args.all:
            out.write("name the dead letters to redrive, or --all\n")
            return 2
        out.write(f"redrove {await redrive(settings, chosen)} dead letter(s)\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlq", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every dead letter, with its reason")
    listing.add_argument("--topic", choices=topics.ALL)
    show = sub.add_parser("show", help="one dead letter: headers and the record")
    show.add_argument("id", help="<topic>.dlq/<partition>/<offset>, as list prints it")
    again = sub.add_parser("redrive", help="publish dead letters to their source topic again")
    again.add_argument("ids", nargs="*")
    again.add_argument("--all", action="store_true")
    again.add_argument("--topic", choices=topics.ALL)
    args = parser.parse_args(argv)
    from parley_shared.runtime import load_settings

    return asyncio.run(run(args, load_settings(BusSettings), sys.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
