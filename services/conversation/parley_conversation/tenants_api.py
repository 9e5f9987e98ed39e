"""Tenants and their API tokens: the admin (``API_TOKEN``) manages tenants; a tenant's write
token may also issue and revoke its own tenant's tokens. ``GET /v1/me`` says who a token is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, StringConstraints, field_validator

from parley_conversation import tenants
from parley_conversation.dependencies import Service
from parley_conversation.service import Conflict, NotFound
from parley_shared.auth import CONFLICT, NOT_FOUND, UNAUTHORIZED
from parley_shared.events import NO_NUL
from parley_shared.identity import bare_number
from parley_shared.tenancy import Admin, Caller, Reader, Writer, caller

router = APIRouter(
    prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED, tags=["tenants"]
)
T = TypeVar("T")
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]
Number = Annotated[str, StringConstraints(pattern=r"^(whatsapp:)?\+[1-9][0-9]{5,14}$")]
ServiceSid = Annotated[str, StringConstraints(pattern=r"^MG[0-9a-fA-F]{32}$")]


class TenantIn(BaseModel):
    name: Text
    numbers: list[Number] = Field(default_factory=list, max_length=1000)
    messaging_services: list[ServiceSid] = Field(default_factory=list, max_length=100)
    retention_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="Forget what participants wrote or were sent after this many days "
        '(bodies, media, numbers: "[erased]"; figures stay); none: keep it',
    )
    changed_by: Text = "admin"

    @field_validator("numbers")
    @classmethod
    def _bare(cls, numbers: list[str]) -> list[str]:
        # A number's SMS and WhatsApp are one number: the tenant owns both.
        return sorted({bare_number(n) for n in numbers})

    @field_validator("messaging_services")
    @classmethod
    def _unique(cls, sids: list[str]) -> list[str]:
        return sorted(set(sids))


class Tenant(BaseModel):
    id: UUID
    name: str
    numbers: list[str]
    messaging_services: list[str]
    retention_days: int | None
    version: int
    changed_at: datetime


class TokenIn(BaseModel):
    scope: Literal["read", "write"]
    label: Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)] = ""
    issued_by: Text = "admin"


class Token(BaseModel):
    id: UUID
    tenant_id: UUID
    scope: Literal["read", "write"]
    label: str
    issued_at: datetime
    revoked_at: datetime | None


class IssuedToken(Token):
    token: str = Field(description="The token itself: shown this once, stored only as a digest")


class Me(BaseModel):
    scope: Literal["read", "write", "admin"]
    tenant: Tenant | None = Field(description="None for the admin token")


async def _do(action: Callable[[], Awaitable[T]]) -> T:
    try:
        return await action()
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc


def _may_manage(who: Caller, tenant_id: UUID) -> None:
    if not who.admin and who.tenant_id != tenant_id:
        raise HTTPException(404, f"tenant {tenant_id} not found")


@router.get("/me", response_model=Me)
async def me(who: Reader, service: Service) -> Me:
    found = await tenants.tenant(service.pool, who.tenant_id) if who.tenant_id else None
    return Me(scope=who.scope, tenant=Tenant.model_validate(found) if found else None)


@router.get("/tenants", response_model=list[Tenant])
async def list_tenants(_: Admin, service: Service) -> list[Tenant]:
    return [Tenant.model_validate(t) for t in await tenants.tenants(service.pool)]


@router.post("/tenants", response_model=Tenant, status_code=201, responses=CONFLICT)
async def create_tenant(body: TenantIn, _: Admin, service: Service) -> Tenant:
    """A new tenant owning ``numbers`` (either form: a number's SMS and WhatsApp alike) and
    ``messaging_services``; each belongs to one tenant at most (409)."""
    return Tenant.model_validate(await _do(lambda: _save(service, None, body)))


@router.get("/tenants/{tenant_id}", response_model=Tenant, responses=NOT_FOUND)
async def get_tenant(tenant_id: UUID, who: Reader, service: Service) -> Tenant:
    _may_manage(who, tenant_id)
    found = await tenants.tenant(service.pool, tenant_id)
    if found is None:
        raise HTTPException(404, f"tenant {tenant_id} not found")
    return Tenant.model_validate(found)


@router.put("/tenants/{tenant_id}", response_model=Tenant, responses={**NOT_FOUND, **CONFLICT})
async def change_tenant(tenant_id: UUID, body: TenantIn, _: Admin, service: Service) -> Tenant:
    """Replace a tenant's name, numbers and Messaging Services (a new version)."""
    return Tenant.model_validate(await _do(lambda: _save(service, tenant_id, body)))


async def _save(service: Service, tenant_id: UUID | None, body: TenantIn) -> dict[str, object]:
    return await tenants.save(
        service,
        tenant_id,
        name=body.name,
        numbers=body.numbers,
        messaging_services=body.messaging_services,
        retention_days=body.retention_days,
        actor=body.changed_by,
    )


@router.get("/tenants/{tenant_id}/tokens", response_model=list[Token], responses=NOT_FOUND)
async def list_tokens(tenant_id: UUID, who: Writer, service: Service) -> list[Token]:
    """The tenant's tokens, revoked ones too (never the tokens themselves)."""
    _may_manage(who, tenant_id)
    if await tenants.tenant(service.pool, tenant_id) is None:
        raise HTTPException(404, f"tenant {tenant_id} not found")
    return [Token.model_validate(t) for t in await tenants.tokens(service.pool, tenant_id)]


@router.post(
    "/tenants/{tenant_id}/tokens", response_model=IssuedToken, status_code=201, responses=NOT_FOUND
)
async def issue_token(tenant_id: UUID, body: TokenIn, who: Writer, service: Service) -> IssuedToken:
    """A new token, ``read`` (GET only) or ``write``; the response is the only time it is
    shown. It works in every service once they have read it from the log (about a second)."""
    _may_manage(who, tenant_id)
    token, row = await _do(
        lambda: tenants.issue(service, tenant_id, body.scope, body.label, body.issued_by)
    )
    return IssuedToken(**row, token=token)


@router.delete("/tenants/{tenant_id}/tokens/{token_id}", response_model=Token, responses=NOT_FOUND)
async def revoke_token(tenant_id: UUID, token_id: UUID, who: Writer, service: Service) -> Token:
    """Revoke a token: every service refuses it once it has read the revocation."""
    _may_manage(who, tenant_id)
    actor = "admin" if who.admin else f"token of tenant {tenant_id}"
    return Token.model_validate(
        await _do(lambda: tenants.revoke(service, tenant_id, token_id, actor))
    )
