"""Tenants: the businesses that own our numbers and Messaging Services, each with its own API
tokens, and who is calling an API.

Tenants are state changes like any other (``tenants.changed``): every service with an API
keeps them in its own tables from the log (``follow``), so each answers a request with only
what the caller's tenant owns, and a rebuild knows every tenant and token too. A tenant owns a
message when the message's number is one of its numbers or arrived through one of its
Messaging Services (the numbers seen on those are kept from ``message.received``).

Tokens are random; only their SHA-256 digest is on the log and in the tables (a digest of 256
random bits cannot be reversed), so neither a database dump nor the log hands out access.
The deployment's ``API_TOKEN`` is the admin token: every tenant's data, and managing tenants.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from parley_shared.db import Connection, Pool
from parley_shared.events import Envelope, MessageReceived, TenantChanged, TokenIssued, TokenRevoked
from parley_shared.identity import addresses_of, bare_number
from parley_shared.migrations import Migration
from parley_shared.projection import Projection

TOKEN_PREFIX = "pt_"  # noqa: S105 - how a tenant token starts, not a secret
Scope = Literal["read", "write", "admin"]
bearer = HTTPBearer(auto_error=False)


def migration(service: str) -> Migration:
    return Migration(
        "tenants, their numbers and API tokens (digests), Messaging Services' numbers",
        f"""
        CREATE TABLE IF NOT EXISTS {service}_tenants (
            tenant_id uuid PRIMARY KEY, version int NOT NULL, name text NOT NULL,
            numbers text[] NOT NULL, messaging_services text[] NOT NULL,
            changed_at timestamptz NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {service}_tokens (
            token_id uuid PRIMARY KEY, tenant_id uuid NOT NULL, digest text NOT NULL UNIQUE,
            scope text NOT NULL, label text NOT NULL, issued_at timestamptz NOT NULL,
            revoked_at timestamptz
        );
        CREATE TABLE IF NOT EXISTS {service}_service_numbers (
            messaging_service_sid text NOT NULL, number text NOT NULL,
            PRIMARY KEY (messaging_service_sid, number)
        );
        """,
    )


def secret(value: SecretStr | None) -> str:
    """A setting's secret, or '' when unset (then no admin token is accepted)."""
    return value.get_secret_value() if value is not None else ""


def numbers_sql(service: str, tenant: str = "t") -> str:
    """SQL: the numbers tenant row ``tenant`` owns, listed or seen on its Messaging Services."""
    return (
        f"{tenant}.numbers || coalesce((SELECT array_agg(s.number) FROM {service}_service_numbers"
        f" s WHERE s.messaging_service_sid = ANY({tenant}.messaging_services)), '{{}}')"
    )


def key_of(tenant_id: UUID) -> str:
    """The log key of a tenant: its changes and tokens stay in order on one partition."""
    return f"tenant:{tenant_id}"


def new_token() -> tuple[str, str]:
    """A new token and its digest."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, digest_of(token)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TenantsProjection:
    """Keeps ``<service>_tenants``, ``_tokens`` and ``_service_numbers`` from the log."""

    def __init__(self, service: str) -> None:
        self.service = service

    def follow(self, projection: Projection) -> None:
        projection.on(TenantChanged, self.tenants_changed)
        projection.on(TokenIssued, self.tokens_issued)
        projection.on(TokenRevoked, self.tokens_revoked)
        projection.on(MessageReceived, self.service_numbers)

    async def tenants_changed(
        self, conn: Connection, events: Sequence[Envelope[TenantChanged]]
    ) -> None:
        # The newest version wins, whichever order versions are read in.
        for e in events:
            p = e.payload
            await conn.execute(
                f"INSERT INTO {self.service}_tenants (tenant_id, version, name, numbers, "
                "messaging_services, changed_at, retention_days) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version, "
                "name = EXCLUDED.name, numbers = EXCLUDED.numbers, "
                "messaging_services = EXCLUDED.messaging_services, "
                "changed_at = EXCLUDED.changed_at, retention_days = EXCLUDED.retention_days "
                f"WHERE {self.service}_tenants.version < EXCLUDED.version",
                p.tenant_id,
                p.version,
                p.name,
                list(p.numbers),
                list(p.messaging_services),
                e.occurred_at,
                p.retention_days,
            )

    async def tokens_issued(
        self, conn: Connection, events: Sequence[Envelope[TokenIssued]]
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.service}_tokens (token_id, tenant_id, digest, scope, label, "
            "issued_at) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], "
            "$5::text[], $6::timestamptz[]) ON CONFLICT DO NOTHING",
            [e.payload.token_id for e in events],
            [e.payload.tenant_id for e in events],
            [e.payload.digest for e in events],
            [e.payload.scope for e in events],
            [e.payload.label for e in events],
            [e.occurred_at for e in events],
        )

    async def tokens_revoked(
        self, conn: Connection, events: Sequence[Envelope[TokenRevoked]]
    ) -> None:
        # A token and its revocation share a key (one partition): the token is there first.
        await conn.execute(
            f"UPDATE {self.service}_tokens k SET revoked_at = least(coalesce(k.revoked_at, "
            "r.at), r.at) FROM unnest($1::uuid[], $2::timestamptz[]) AS r(id, at) "
            "WHERE k.token_id = r.id",
            [e.payload.token_id for e in events],
            [e.occurred_at for e in events],
        )

    async def service_numbers(
        self, conn: Connection, events: Sequence[Envelope[MessageReceived]]
    ) -> None:
        pairs = {
            (e.payload.messaging_service_sid, bare_number(e.payload.our_address))
            for e in events
            if e.payload.messaging_service_sid
        }
        if pairs:
            await conn.execute(
                f"INSERT INTO {self.service}_service_numbers SELECT * FROM unnest($1::text[], "
                "$2::text[]) ON CONFLICT DO NOTHING",
                [sid for sid, _ in pairs],
                [number for _, number in pairs],
            )


@dataclass(frozen=True)
class Caller:
    """Who is calling: the admin (every tenant), or a tenant's token with its scope."""

    scope: Scope
    tenant_id: UUID | None = None
    # Bare E.164 numbers the tenant owns (listed, or seen on its Messaging Services); None
    # for the admin, who sees every number.
    numbers: frozenset[str] | None = None
    messaging_services: frozenset[str] | None = None

    @property
    def admin(self) -> bool:
        return self.scope == "admin"

    def owns(self, address: str) -> bool:
        return self.numbers is None or bare_number(address) in self.numbers

    def addresses(self) -> list[str] | None:
        """Every ``our_address`` the caller may see (SMS and WhatsApp forms), for
        ``our_address = ANY($n)``; None: no limit."""
        if self.numbers is None:
            return None
        return addresses_of(self.numbers)


ADMIN = Caller("admin")


@dataclass(frozen=True)
class Tenancy:
    """What the API dependencies need, from the app's lifespan state (``tenancy``)."""

    pool: Pool
    service: str
    admin_token: str

    async def caller(self, token: str) -> Caller | None:
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        if not token.startswith(TOKEN_PREFIX):
            return None
        row = await self.pool.fetchrow(
            f"SELECT k.tenant_id, k.scope, {numbers_sql(self.service)} AS numbers, "
            "t.messaging_services "
            f"FROM {self.service}_tokens k JOIN {self.service}_tenants t USING (tenant_id) "
            "WHERE k.digest = $1 AND k.revoked_at IS NULL",
            digest_of(token),
        )
        if row is None:
            return None
        return Caller(
            row["scope"],
            row["tenant_id"],
            frozenset(row["numbers"]),
            frozenset(row["messaging_services"]),
        )


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """401 unless the request carries a live token: the admin's or a tenant's."""
    tenancy: Tenancy = request.state.tenancy
    found = await tenancy.caller(credentials.credentials) if credentials is not None else None
    if found is None:
        raise HTTPException(
            401, "missing, revoked or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


async def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """403 for a read-only token."""
    if who.scope == "read":
        raise HTTPException(403, "this token may only read")
    return who


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """403 unless the admin token (``API_TOKEN``)."""
    if not who.admin:
        raise HTTPException(403, "only the admin token (API_TOKEN) may do this")
    return who


Reader = Annotated[Caller, Depends(caller)]
Writer = Annotated[Caller, Depends(writer)]
Admin = Annotated[Caller, Depends(admin)]
