"""``GET /v1/handoffs``: people in the loop, in figures."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from parley_analytics import handoffs, views
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
