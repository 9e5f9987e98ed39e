"""``GET /v1/handoffs``: people in the loop, in figures; ``GET /v1/contacts``: calls and
emails beside the messages."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from parley_analytics import contacts, handoffs, views
from parley_analytics.api import PoolDep, Range, Scope
from parley_shared.auth import UNAUTHORIZED
from parley_shared.tenancy import caller

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)


class Wait(BaseModel):
    count: int
    p50_ms: float | None
    p95_ms: float | None


class Handoffs(BaseModel):
    range: Scope
    conversations: int
    handed_off_conversations: int
    # Of the conversations opened in the range, the share a person took over in it.
    handed_off_share: float | None
    takeovers: int
    # Participants who texted HUMAN, AGENT… in the range.
    requests: int
    # From the participant's request (else the takeover) to a person's first message.
    first_human_reply: Wait


@router.get("/handoffs", response_model=Handoffs)
async def handoff_figures(f: Range, pool: PoolDep) -> Handoffs:
    """How often people take conversations over from the AI, and how long participants wait
    for a person."""
    figures = await handoffs.figures(pool, f)
    total, _ = await views.conversations(pool, f)
    handed = figures["handed_off_conversations"]
    return Handoffs(
        range=Scope.of(f),
        conversations=total,
        handed_off_share=round(handed / total, 4) if total else None,
        **figures,
    )


class ChannelContacts(BaseModel):
    channel: Literal["voice", "email"]
    # Calls or emails begun in the range.
    total: int
    inbound: int
    outbound: int
    # Calls answered, missed (busy, no answer, canceled, failed) and still under way.
    completed: int
    missed: int
    in_progress: int
    talk_seconds: int


class Contacts(BaseModel):
    range: Scope
    channels: list[ChannelContacts]


@router.get("/contacts", response_model=Contacts)
async def contact_figures(f: Range, pool: PoolDep) -> Contacts:
    """Calls and emails per channel ("voice", "email"): how many, answered and missed calls,
    seconds talked. `our_number` filters calls by our number; emails are to no number."""
    return Contacts(
        range=Scope.of(f),
        channels=[ChannelContacts(**row) for row in await contacts.figures(pool, f)],
    )
