"""Erasing a participant (right to be forgotten), and applying tenants' retention.

Erasing a participant: their keys are deleted, so the log reads
"[erased]" where their numbers, names and messages were, and every projection forgets them
when it reads ``participant.erased`` (a second or so). Only a token that may write; a tenant's
only for a participant who wrote to none but its own numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException
from pydantic import AwareDatetime, BaseModel, StringConstraints, field_validator

from parley_conversation import retention
from parley_conversation.dependencies import Service
from parley_conversation.service import Conflict, NotFound
from parley_shared.auth import CONFLICT, NOT_FOUND, UNAUTHORIZED
from parley_shared.events import NO_NUL
from parley_shared.tenancy import Admin, Writer, caller

router = APIRouter(
    prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED, tags=["participants"]
)


class ErasureIn(BaseModel):
    # A phone number (its SMS and WhatsApp alike), or the address an email came from.
    participant: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            to_lower=True,
            pattern=r"^((whatsapp:)?\+[1-9][0-9]{5,14}|[^@\s\x00<>]{1,64}@[^@\s\x00<>]{1,255})$",
        ),
    ]
    requested_by: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
    ] = "operator"


class Erasure(BaseModel):
    # The participant's keys deleted (one per account they wrote to), by their random ids.
    subjects: list[UUID]


@router.post(
    "/participants/erase",
    status_code=202,
    response_model=Erasure,
    responses={**NOT_FOUND, **CONFLICT},
)
async def erase_participant(body: ErasureIn, who: Writer, service: Service) -> Erasure:
    """Forget a participant: a number's SMS and WhatsApp alike (and its calls), or an email
    sender, every conversation of it. Their later messages start afresh under a new key."""
    try:
        subjects = await service.erase(body.participant, body.requested_by, who.numbers)
    except NotFound as exc:
        raise HTTPException(404, "no conversation with this participant") from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    if not subjects:
        raise HTTPException(404, "nothing of this participant is sealed: nothing to erase")
    return Erasure(subjects=subjects)


# As of when a sweep may apply retention: horizons up to a century back stay datetimes.
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


class SweepIn(BaseModel):
    as_of: AwareDatetime | None = None
    requested_by: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
    ] = "operator"

    @field_validator("as_of")
    @classmethod
    def _datable(cls, as_of: datetime | None) -> datetime | None:
        if as_of is not None and not EARLIEST <= as_of < LATEST:
            raise ValueError(f"as_of must be from {EARLIEST.year} to {LATEST.year - 1}")
        return as_of


class Swept(BaseModel):
    tenant_id: UUID
    before: datetime
    conversations: int


@router.post("/retention/sweep", response_model=list[Swept], tags=["tenants"])
async def sweep_retention(_: Admin, service: Service, body: SweepIn | None = None) -> list[Swept]:
    """Apply every tenant's retention now (the service does so every
    ``RETENTION_SWEEP_S``), or as of ``as_of`` (to test a tenant's setting, or to catch up
    after an outage); lists the tenants whose conversations it reached."""
    now = body.as_of if body and body.as_of else datetime.now(UTC)
    return [
        Swept(tenant_id=s.tenant_id, before=s.before, conversations=s.conversations)
        for s in await retention.sweep(service, now, body.requested_by if body else "operator")
    ]
