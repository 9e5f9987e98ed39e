"""Participants' keys in a real Postgres: one key per participant across processes, erasure by
deleting it, and no publish at all when no key can be had."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from parley_dev.infra import free_port
from parley_shared.bus import BrokerUnavailable
from parley_shared.db import Pool, create_pool
from parley_shared.events import Envelope, MessageReceived, decode, encode, new_envelope
from parley_shared.keyring import Keyring, SealingPublisher
from parley_shared.sealing import ERASED

ACCOUNT = "AC" + "1" * 32


def inbound(participant: str, body: str, account: str = ACCOUNT) -> Envelope[MessageReceived]:
    payload = MessageReceived(
        message_sid="SM" + uuid.uuid4().hex,
        account_sid=account,
        channel="whatsapp" if participant.startswith("whatsapp:") else "sms",
        participant=participant,
        our_address="+15550000000",
        body=body,
    )
    return new_envelope(
        payload,
        event_id=uuid.uuid4(),
        conversation_key="cv_" + participant,
        account_sid=account,
        occurred_at=datetime.now(UTC),
    )


def wire(events: Sequence[Envelope]) -> list[Envelope]:
    return [decode(encode(e)) for e in events]


async def test_one_key_per_participant_whichever_process_makes_it_first(pool: Pool) -> None:
    first, second = Keyring(pool), Keyring(pool)
    await first.ensure()
    await second.ensure()
    a, b = await asyncio.gather(
        first.seal([inbound("+15551230001", "from one")]),
        second.seal([inbound("whatsapp:+15551230001", "from the other")]),
    )
    other_account = await first.seal([inbound("+15551230001", "x", account="AC" + "2" * 32)])
    assert a[0].sealed is not None and b[0].sealed is not None
    # The same number on SMS and WhatsApp is one participant; another account's is not.
    assert a[0].subject == b[0].subject
    assert other_account[0].sealed is not None
    assert other_account[0].subject != a[0].subject
    # Each process opens what the other sealed.
    assert (await second.open(wire(a)))[0].payload.body == "from one"
    assert (await first.open(wire(b)))[0].payload.body == "from the other"


async def test_erasing_deletes_the_key_and_a_later_message_gets_a_new_one(pool: Pool) -> None:
    here, elsewhere, cached = Keyring(pool), Keyring(pool, cache_s=0), Keyring(pool, cache_s=0.5)
    await here.ensure()
    before = wire(await here.seal([inbound("+15551230002", "my address is 1 Main St")]))
    assert (await cached.open(before))[0].payload.body == "my address is 1 Main St"

    async with pool.acquire() as conn:
        erased = await here.erase(conn, [ACCOUNT, "AC" + "9" * 32], "whatsapp:+15551230002")
    assert before[0].sealed is not None and before[0].subject is not None
    assert list(erased.items()) == [(before[0].subject, ACCOUNT)]
    subject = before[0].subject
    for keyring in (here, elsewhere):
        [gone] = await keyring.open(before)
        assert (gone.payload.participant, gone.payload.body) == (ERASED, ERASED)
    # A process that read the key before the erasure keeps it no longer than its cache time.
    await asyncio.sleep(0.6)
    assert (await cached.open(before))[0].payload.body == ERASED

    after = wire(await here.seal([inbound("+15551230002", "hello again")]))
    assert after[0].sealed is not None and after[0].subject != subject
    opened = await elsewhere.open([*before, *after])
    assert [e.payload.body for e in opened] == [ERASED, "hello again"]
    async with pool.acquire() as conn:
        assert await here.erase(conn, [ACCOUNT], "+15559999999") == {}


async def test_no_key_means_no_publish_never_a_publish_in_clear() -> None:
    published: list[Envelope] = []

    class Log:
        async def publish(self, topic: str, event: Envelope) -> None:
            published.append(event)

        async def publish_many(self, events: Sequence[tuple[str, Envelope]]) -> None:
            published.extend(e for _, e in events)

    # Nothing listens on this port: the keyring's database is down.
    down = await create_pool(f"postgresql://parley@127.0.0.1:{free_port()}/x", min_size=0)
    try:
        publisher = SealingPublisher(Log(), Keyring(down))
        with pytest.raises(BrokerUnavailable):
            await publisher.publish("message.received", inbound("+15551230003", "hi"))
        with pytest.raises(BrokerUnavailable):
            await publisher.publish_many([("message.received", inbound("+15551230003", "hi"))])
        assert published == []
    finally:
        await down.close()


async def test_a_deletion_reaches_every_process_at_its_commit_whatever_their_cache(
    pool: Pool,
) -> None:
    here, there = Keyring(pool), Keyring(pool, cache_s=3600)
    await here.ensure()
    listening = asyncio.create_task(there.listen())
    try:
        before = wire(await there.seal([inbound("+15551230004", "first")]))
        assert (await there.open(before))[0].payload.body == "first"  # cached for an hour
        async with pool.acquire() as conn, conn.transaction():
            await here.erase(conn, [ACCOUNT], "+15551230004")

        async def forgotten() -> bool:
            return (await there.open(before))[0].payload.body == ERASED

        for _ in range(100):
            if await forgotten():
                break
            await asyncio.sleep(0.02)
        assert await forgotten()
        # And the participant writing again gets a new key there, not the deleted one.
        after = await there.seal([inbound("+15551230004", "second")])
        assert after[0].subject != before[0].subject
        assert (await here.open(wire(after)))[0].payload.body == "second"
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
