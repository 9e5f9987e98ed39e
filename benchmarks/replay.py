"""Replay benchmark: N messages' worth of events through the real broker, then every
projection rebuilt from the log and every analytics endpoint timed over that volume.

    ./dev bench                      # 1,000,000 messages (5 events each)
    ./dev bench --messages 20000     # a quicker run

Prints figures; asserts nothing about speed. "Overall" includes joining the consumer group
(a new group waits out part of its session time-out before its first assignment); "after the
first poll" is the steady rate of consuming and applying events. Uses
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, else starts a Tansu broker and a PostgreSQL
cluster of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer

from parley_analytics.app import create_app
from parley_analytics.settings import AnalyticsSettings
from parley_dev.infra import scratch
from parley_dev.rebuild import PROJECTIONS, Progress, rebuild
from parley_dev.serve import serving
from parley_shared import topics
from parley_shared.db import create_pool
from parley_shared.events import (
    Channel,
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
    caused_by,
    encode,
    new_envelope,
)
from parley_shared.identity import (
    conversation_key,
    derived_event_id,
    inbound_event_id,
    status_event_id,
)
from parley_shared.kafka import ensure_topics
from parley_shared.keyring import Keyring
from parley_shared.runtime import tune_gc
from parley_shared.settings import BusSettings

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token-123"  # noqa: S105 - a throwaway local server
OURS = {"sms": ["+15550009001", "+15550009002"], "whatsapp": ["whatsapp:+15550009003"]}
ENDPOINTS = [
    "/v1/stats",
    "/v1/engagement?granularity=day",
    "/v1/engagement?granularity=hour",
    "/v1/response-times",
    "/v1/delivery",
    "/v1/ai-usage",
    "/v1/stats?channel=whatsapp",
    "/v1/handoffs",
    "/v1/breakdown",
    "/v1/breakdown?by=tenant",
]


def message_events(
    i: int, rng: random.Random, start: datetime, span_s: float
) -> list[tuple[str, Envelope]]:
    channel: Channel = "whatsapp" if rng.random() < 0.3 else "sms"
    ours = rng.choice(OURS[channel])
    number = f"+1555{rng.randrange(100_000):07d}"
    participant = f"whatsapp:{number}" if channel == "whatsapp" else number
    key = conversation_key(
        account_sid=ACCOUNT, our_endpoint=ours, participant=participant, channel=channel
    )
    at = start + timedelta(seconds=span_s * i)
    sid = f"SM{i:032x}"
    inbound = new_envelope(
        MessageReceived(
            message_sid=sid,
            account_sid=ACCOUNT,
            channel=channel,
            participant=participant,
            our_address=ours,
            body=f"question number {i}",
        ),
        event_id=inbound_event_id(sid),
        conversation_key=key,
        account_sid=ACCOUNT,
        occurred_at=at,
    )
    fallback = rng.random() < 0.02
    reply = caused_by(
        inbound,
        ReplyGenerated(
            in_reply_to=inbound.event_id,
            inbound_message_sid=sid,
            inbound_at=at,
            channel=channel,
            participant=participant,
            our_address=ours,
            body=f"answer number {i}",
            source="fallback" if fallback else "ai",
            model="gpt-4o-mini",
            prompt_tokens=0 if fallback else rng.randrange(50, 800),
            completion_tokens=0 if fallback else rng.randrange(10, 120),
            latency_ms=rng.randrange(300, 4000),
        ),
        event_id=derived_event_id(topics.REPLY_GENERATED, inbound.event_id),
        occurred_at=at + timedelta(seconds=rng.uniform(0.5, 4)),
    )
    out_sid = f"SM{i + 10**12:032x}"
    sent = caused_by(
        reply,
        MessageSent(
            reply_event_id=reply.event_id,
            channel=channel,
            participant=participant,
            our_address=ours,
            body=f"answer number {i}",
            in_reply_to=inbound.event_id,
            inbound_at=at,
            message_sid=out_sid,
            status="queued",
        ),
        event_id=derived_event_id(topics.MESSAGE_SENT, reply.event_id),
        occurred_at=reply.occurred_at + timedelta(seconds=0.3),
    )
    final = "delivered" if rng.random() < 0.95 else "undelivered"
    statuses = []
    for offset, status in ((1.0, "sent"), (rng.uniform(2, 20), final)):
        statuses.append(
            caused_by(
                sent,
                StatusUpdated(
                    message_sid=out_sid,
                    account_sid=ACCOUNT,
                    status=status,
                    channel=channel,
                    participant=participant,
                    our_address=ours,
                    error_code=30003 if status == "undelivered" else None,
                ),
                event_id=status_event_id(out_sid, status),
                occurred_at=sent.occurred_at + timedelta(seconds=offset),
            )
        )
    return [
        (topics.MESSAGE_RECEIVED, inbound),
        (topics.REPLY_GENERATED, reply),
        (topics.MESSAGE_SENT, sent),
        *((topics.STATUS_UPDATED, s) for s in statuses),
    ]


async def load(bus: BusSettings, messages: int, database: str) -> int:
    """Write ``messages`` messages' events to the log, sealed as Parley's publishers seal
    them (so the replay pays for opening them, as a real rebuild does)."""
    await ensure_topics(bus)
    pool = await create_pool(database, max_size=2, name="bench-load")
    keyring = Keyring(pool)
    await keyring.ensure()
    producer = AIOKafkaProducer(
        bootstrap_servers=bus.kafka_bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=30)
    span_s = 30 * 86400 / max(messages, 1)
    sent = 0
    began = time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        for i in range(messages):
            events = message_events(i, rng, start, span_s)
            sealed = await keyring.seal([event for _, event in events])
            for (topic, _), event in zip(events, sealed, strict=True):
                pending.append(
                    await producer.send(
                        bus.kafka_topic_prefix + topic,
                        encode(event),
                        key=event.conversation_key.encode(),
                    )
                )
                sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if i and i % 50_000 == 0:
                print(
                    f"  loaded {i} messages ({sent / (time.monotonic() - began):,.0f} events/s)",
                    flush=True,
                )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await pool.close()
    elapsed = time.monotonic() - began
    print(
        f"loaded {sent} events ({messages} messages) in {elapsed:.1f}s: "
        f"{sent / elapsed:,.0f} events/s"
    )
    return sent


async def time_endpoints(
    database: str, bus: BusSettings, schema: str, runs: int, group_id: str
) -> None:
    """Time every endpoint of an analytics service that is caught up with the log: it joins
    the replay's consumer group, so it resumes where the replay stopped (a new group would
    read the whole log again while being timed)."""
    settings = AnalyticsSettings(
        **bus.model_dump(),
        database_url=database,
        db_schema=schema,
        kafka_group_id=group_id,
        api_token=TOKEN,
    )
    async with (
        serving(create_app(settings)) as base,
        httpx.AsyncClient(
            base_url=base, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http,
    ):
        print(f"analytics endpoints, {runs} calls each (ms):")
        for path in [*ENDPOINTS, "/v1/export/messages.csv"]:
            times = []
            for _ in range(runs if "export" not in path else 2):
                began = time.perf_counter()
                response = await http.get(path)
                response.raise_for_status()
                times.append((time.perf_counter() - began) * 1000)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            size = f", {len(response.content) / 1e6:.1f} MB" if "export" in path else ""
            print(f"  {path:<36} p50 {statistics.median(times):8.1f}   p99 {p99:8.1f}{size}")


async def main(args: argparse.Namespace) -> None:
    with scratch("parley-bench") as (kafka, database):
        bus = BusSettings(
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
            kafka_topic_partitions=args.partitions,
        )
        events = await load(bus, args.messages, database)
        tune_gc()  # as every service and ./dev rebuild do
        tag = uuid.uuid4().hex[:6]
        for service in args.services or list(PROJECTIONS):
            began = time.monotonic()
            progress = Progress(service, sys.stdout if args.progress else None)
            done = await rebuild(
                service,
                database_url=database,
                bus=bus,
                schema=f"{service}_bench",
                group_id=f"bench-{service}-{tag}",
                out=sys.stdout if args.progress else None,
                progress=progress,
            )
            elapsed = time.monotonic() - began
            steady = progress.steady_rate()
            print(
                f"replay {service:<13} {done} events in {elapsed:7.1f}s: "
                f"{done / elapsed:8,.0f} events/s overall, "
                + (f"{steady:8,.0f} events/s after the first poll" if steady else "")
            )
        print(f"({events} events on the log)")
        if not args.services or "analytics" in args.services:
            await time_endpoints(
                database, bus, "analytics_bench", args.runs, f"bench-analytics-{tag}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=50, help="calls per endpoint")
    parser.add_argument("--services", nargs="*", choices=list(PROJECTIONS))
    parser.add_argument("--progress", action="store_true")
    asyncio.run(main(parser.parse_args()))
