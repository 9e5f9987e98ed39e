"""Two replicas of a projection applying a message's send outcome and its status callback at
the same moment (the two topics' partitions went to different replicas): the message must
end in the callback's status whichever transaction commits first."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from parley_analytics import tables as analytics_tables
from parley_analytics.service import AnalyticsService
from parley_conversation import tables as conversation_tables
from parley_conversation.service import ConversationService
from parley_shared.db import Pool, create_pool
from parley_shared.events import (
    Envelope,
    MessageReceived,
    MessageSent,
    ReplyGenerated,
    StatusUpdated,
    caused_by,
    new_envelope,
)
from parley_shared.identity import inbound_event_id, status_event_id
from parley_shared.migrations import migrate
from parley_shared.projection import Projection
from tests.helpers import ACCOUNT_SID

SID = "SM" + "ab" * 16
AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def exchange() -> tuple[list[Envelope], Envelope, Envelope]:
    """(what comes before, the send outcome, the delivered callback)."""
    inbound = new_envelope(
        MessageReceived(
            message_sid="SM" + "cd" * 16,
            account_sid=ACCOUNT_SID,
            channel="sms",
            participant="+15550300001",
            our_address="+15557654321",
            body="hi",
        ),
        event_id=inbound_event_id("SM" + "cd" * 16),
        conversation_key="cv_replicas",
        account_sid=ACCOUNT_SID,
        occurred_at=AT,
    )
    reply = caused_by(
        inbound,
        ReplyGenerated(
            in_reply_to=inbound.event_id,
            inbound_message_sid=inbound.payload.message_sid,
            inbound_at=AT,
            channel="sms",
            participant="+15550300001",
            our_address="+15557654321",
            body="hello",
            source="ai",
        ),
        event_id=uuid.uuid4(),
        occurred_at=AT + timedelta(seconds=1),
    )
    sent = caused_by(
        reply,
        MessageSent(
            reply_event_id=reply.event_id,
            in_reply_to=inbound.event_id,
            inbound_at=AT,
            channel="sms",
            participant="+15550300001",
            our_address="+15557654321",
            body="hello",
            message_sid=SID,
            status="queued",
        ),
        event_id=uuid.uuid4(),
        occurred_at=AT + timedelta(seconds=2),
    )
    delivered = new_envelope(
        StatusUpdated(
            message_sid=SID,
            account_sid=ACCOUNT_SID,
            status="delivered",
            channel="sms",
            participant="+15550300001",
            our_address="+15557654321",
        ),
        event_id=status_event_id(SID, "delivered"),
        conversation_key="cv_replicas",
        account_sid=ACCOUNT_SID,
        occurred_at=AT + timedelta(seconds=3),
    )
    return [inbound, reply], sent, delivered


async def waiting_on_a_lock(pool: Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
    )


async def apply_together(
    pool: Pool, replicas: tuple[Projection, Projection], first: Envelope, second: Envelope
) -> None:
    """Replica 1 applies ``first`` and holds its transaction open while replica 2 applies
    ``second``; then replica 1 commits, then replica 2."""
    async with pool.acquire() as one, pool.acquire() as two:

        async def other() -> None:
            async with two.transaction():
                await replicas[1].apply(two, [second])

        async with one.transaction():
            await replicas[0].apply(one, [first])
            racing = asyncio.create_task(other())
            # Commit only once replica 2 waits on replica 1 (or, unguarded, finished without).
            for _ in range(1000):
                if racing.done() or await waiting_on_a_lock(pool):
                    break
                await asyncio.sleep(0.01)
        await racing


@pytest.mark.parametrize("status_first", [True, False], ids=["status first", "outcome first"])
async def test_conversation_replicas_agree_on_the_status(database: str, status_first: bool) -> None:
    await check(database, conversation_tables, ConversationService, status_first, "conversation")


@pytest.mark.parametrize("status_first", [True, False], ids=["status first", "outcome first"])
async def test_analytics_replicas_agree_on_the_funnel(database: str, status_first: bool) -> None:
    await check(database, analytics_tables, AnalyticsService, status_first, "analytics")


async def check(
    database: str, tables: ModuleType, kind: type, status_first: bool, service: str
) -> None:
    pool = await create_pool(database)
    try:
        await migrate(pool, service, tables.MIGRATIONS)
        replicas: tuple[Projection, Projection] = (
            (kind(pool, relay=None), kind(pool, relay=None))
            if service == "conversation"
            else (kind(pool), kind(pool))
        )
        before, sent, delivered = exchange()
        await replicas[0].handle_batch(before)
        first, second = (delivered, sent) if status_first else (sent, delivered)
        await apply_together(pool, replicas, first, second)
        if service == "conversation":
            status = await pool.fetchval(
                "SELECT status FROM conversation_messages WHERE message_sid = $1", SID
            )
        else:
            status = await pool.fetchval(
                "SELECT funnel_status FROM analytics_facts WHERE message_sid = $1", SID
            )
        assert status == "delivered"
    finally:
        await pool.close()
