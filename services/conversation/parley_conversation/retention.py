"""Applying tenants' retention: every hour (and on an admin's request), each tenant that keeps
messages for ``retention_days`` has the conversations holding messages older than that
listed in ``retention.applied`` events; every projection, this one too, forgets them from
the event (``parley_shared.retention``). Only conversations with something newly expired
are listed, so a quiet hour logs nothing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from parley_conversation import tables
from parley_conversation.service import ConversationService
from parley_shared import topics
from parley_shared.db import Connection, lock_keys
from parley_shared.events import RetentionApplied, new_envelope
from parley_shared.identity import addresses_of
from parley_shared.tenancy import key_of, numbers_sql

log = logging.getLogger(__name__)
SERVICE = tables.SERVICE
CHUNK = 1000  # conversations per event


@dataclass(frozen=True)
class Swept:
    tenant_id: UUID
    before: datetime
    conversations: int


async def sweep(
    service: ConversationService, now: datetime, actor: str = "retention"
) -> list[Swept]:
    """Apply every tenant's retention as of ``now``."""
    tenants = await service.pool.fetch(
        f"SELECT t.tenant_id, t.retention_days, {numbers_sql(SERVICE)} AS numbers "
        f"FROM {SERVICE}_tenants t WHERE t.retention_days IS NOT NULL ORDER BY t.tenant_id"
    )
    swept = []
    for tenant in tenants:
        before = now - timedelta(days=tenant["retention_days"])
        async with service.pool.acquire() as conn, conn.transaction():
            # One sweep of a tenant at a time across replicas: the second finds nothing new.
            await lock_keys(conn, SERVICE, [f"retention:{tenant['tenant_id']}"])
            keys = await _reached(conn, addresses_of(tenant["numbers"]), before)
            for start in range(0, len(keys), CHUNK):
                event = new_envelope(
                    RetentionApplied(
                        tenant_id=tenant["tenant_id"],
                        before=before,
                        conversation_keys=tuple(keys[start : start + CHUNK]),
                        actor=actor,
                    ),
                    event_id=uuid4(),
                    conversation_key=key_of(tenant["tenant_id"]),
                    account_sid="",
                    occurred_at=datetime.now(UTC),
                )
                await service.commit(conn, topics.PARTICIPANTS_CHANGED, event)
        if keys:
            swept.append(Swept(tenant["tenant_id"], before, len(keys)))
    await service.publish()
    return swept


async def _reached(conn: Connection, addresses: list[str], before: datetime) -> list[str]:
    """The conversations on these addresses with messages from before ``before`` that their
    last horizon did not reach."""
    rows = await conn.fetch(
        f"SELECT DISTINCT m.conversation_key FROM {SERVICE}_threads t "
        f"JOIN {SERVICE}_messages m USING (conversation_key) "
        f"LEFT JOIN {SERVICE}_horizons h USING (conversation_key) "
        "WHERE t.our_address = ANY($1::text[]) AND m.anchor_at < $2 "
        "AND m.anchor_at >= coalesce(h.before, '-infinity') ORDER BY 1",
        addresses,
        before,
    )
    return [row["conversation_key"] for row in rows]


async def keep_sweeping(service: ConversationService, interval_s: float) -> None:
    """Sweep now and every ``interval_s`` (the runtime restarts it after a failure)."""
    while True:
        for done in await sweep(service, datetime.now(UTC)):
            log.info(
                "retention: tenant %s, %d conversations before %s",
                done.tenant_id,
                done.conversations,
                done.before.isoformat(),
            )
        await asyncio.sleep(interval_s)
