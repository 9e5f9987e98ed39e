"""Managing tenants (the admin) and their tokens: each change a ``tenants.changed`` event,
applied here and queued for the log in one transaction, so every service learns it from the
log and a rebuild knows it too. A number or Messaging Service belongs to one tenant at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from parley_conversation import tables
from parley_conversation.service import Conflict, NotFound
from parley_shared import topics
from parley_shared.db import Connection, Pool, enqueue, first_time, lock_keys
from parley_shared.events import Envelope, Payload, TenantChanged, TokenIssued, TokenRevoked
from parley_shared.events import new_envelope as envelope
from parley_shared.projection import Projection
from parley_shared.tenancy import key_of, new_token

SERVICE = tables.SERVICE
TENANT_COLUMNS = (
    "tenant_id AS id, name, numbers, messaging_services, retention_days, version, changed_at"
)
KEY_COLUMNS = "token_id AS id, tenant_id, scope, label, issued_at, revoked_at"


async def tenants(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(f"SELECT {TENANT_COLUMNS} FROM {SERVICE}_tenants ORDER BY name")
    return [dict(row) for row in rows]


async def tenant(pool: Pool | Connection, tenant_id: UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"SELECT {TENANT_COLUMNS} FROM {SERVICE}_tenants WHERE tenant_id = $1", tenant_id
    )
    return dict(row) if row is not None else None


async def tokens(pool: Pool, tenant_id: UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {KEY_COLUMNS} FROM {SERVICE}_tokens WHERE tenant_id = $1 ORDER BY issued_at",
        tenant_id,
    )
    return [dict(row) for row in rows]


async def _commit(projection: Projection, conn: Connection, event: Envelope) -> None:
    """Apply our own event now and queue it for the log; read back from it, it is dropped."""
    await first_time(conn, SERVICE, event.event_id)
    await projection.apply(conn, [event])
    await enqueue(conn, SERVICE, [(topics.TENANTS_CHANGED, event)])


def _event(tenant_id: UUID, payload: Payload) -> Envelope[Payload]:
    return envelope(
        payload,
        event_id=uuid4(),
        conversation_key=key_of(tenant_id),
        account_sid="",
        occurred_at=datetime.now(UTC),
    )


async def save(
    projection: Projection,
    tenant_id: UUID | None,
    *,
    name: str,
    numbers: Sequence[str],
    messaging_services: Sequence[str],
    retention_days: int | None = None,
    actor: str,
) -> dict[str, Any]:
    """Create a tenant (``tenant_id`` None) or replace one's name, numbers, services and
    retention."""
    async with projection.pool.acquire() as conn, conn.transaction():
        # One change to tenants at a time: whether a number is free is decided in order.
        await lock_keys(conn, SERVICE, ["tenants"])
        version = 0
        if tenant_id is None:
            tenant_id = uuid4()
        else:
            found = await tenant(conn, tenant_id)
            if found is None:
                raise NotFound(f"tenant {tenant_id} not found")
            version = found["version"]
        taken = await conn.fetch(
            f"SELECT name, x FROM {SERVICE}_tenants, unnest(numbers || messaging_services) x "
            "WHERE tenant_id <> $1 AND x = ANY($2::text[])",
            tenant_id,
            [*numbers, *messaging_services],
        )
        if taken:
            owned = ", ".join(f"{row['x']} ({row['name']})" for row in taken)
            raise Conflict(f"already another tenant's: {owned}")
        await _commit(
            projection,
            conn,
            _event(
                tenant_id,
                TenantChanged(
                    tenant_id=tenant_id,
                    version=version + 1,
                    name=name,
                    numbers=tuple(numbers),
                    messaging_services=tuple(messaging_services),
                    retention_days=retention_days,
                    actor=actor,
                ),
            ),
        )
        saved = await tenant(conn, tenant_id)
        assert saved is not None
        return saved


async def issue(
    projection: Projection, tenant_id: UUID, scope: Literal["read", "write"], label: str, actor: str
) -> tuple[str, dict[str, Any]]:
    """A new token for a tenant: the token itself (shown once, never stored) and its row."""
    token, digest = new_token()
    token_id = uuid4()
    async with projection.pool.acquire() as conn, conn.transaction():
        if await tenant(conn, tenant_id) is None:
            raise NotFound(f"tenant {tenant_id} not found")
        await _commit(
            projection,
            conn,
            _event(
                tenant_id,
                TokenIssued(
                    token_id=token_id,
                    tenant_id=tenant_id,
                    scope=scope,
                    digest=digest,
                    label=label,
                    actor=actor,
                ),
            ),
        )
        row = await conn.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM {SERVICE}_tokens WHERE token_id = $1", token_id
        )
    assert row is not None  # just written, in this transaction
    return token, dict(row)


async def revoke(
    projection: Projection, tenant_id: UUID, token_id: UUID, actor: str
) -> dict[str, Any]:
    """Revoke a token (again: nothing changes)."""
    select = f"SELECT {KEY_COLUMNS} FROM {SERVICE}_tokens WHERE token_id = $1 AND tenant_id = $2"
    async with projection.pool.acquire() as conn, conn.transaction():
        await lock_keys(conn, SERVICE, [key_of(tenant_id)])
        row = await conn.fetchrow(select, token_id, tenant_id)
        if row is None:
            raise NotFound(f"token {token_id} of tenant {tenant_id} not found")
        if row["revoked_at"] is None:
            revoked = TokenRevoked(token_id=token_id, tenant_id=tenant_id, actor=actor)
            await _commit(projection, conn, _event(tenant_id, revoked))
            row = await conn.fetchrow(select, token_id, tenant_id)
    assert row is not None  # it was there a moment ago, under the tenant's lock
    return dict(row)
