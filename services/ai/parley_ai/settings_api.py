"""Operators' API for how the AI answers per number (bearer token; a tenant's reaches its own
numbers only, as if no other existed; changes need a write token): read the effective
settings and where each value comes from, change them (a new audited version, effective for
the next message), and read every version."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, StringConstraints

from parley_ai import number_settings
from parley_ai.core import Behaviour, NumberConfig, behaviour_for
from parley_shared.auth import NOT_FOUND, UNAUTHORIZED
from parley_shared.db import Pool
from parley_shared.events import NO_NUL, AiOverrides
from parley_shared.identity import bare_number
from parley_shared.tenancy import Caller, Reader, Writer, caller

router = APIRouter(
    prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED, tags=["settings"]
)
Number = Annotated[
    str, Path(pattern=r"^(whatsapp:)?\+[1-9][0-9]{5,14}$", examples=["+14155238886"])
]
Source = Literal["operators", "file", "default"]


class Effective(BaseModel):
    system_prompt: str
    model: str
    max_tokens: int
    temperature: float
    fallback_reply: str
    history_turns: int
    enabled: bool


class NumberSettings(BaseModel):
    number: str
    # The operators' settings (unset: the default applies); version 0 = never set.
    settings: AiOverrides
    version: int
    updated_at: datetime | None
    updated_by: str | None
    effective: Effective
    # Where each effective value comes from.
    sources: dict[str, Source]


class Change(AiOverrides):
    """The new settings, whole: a field left out goes back to its default."""

    changed_by: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=80, pattern=NO_NUL),
    ]


class Version(BaseModel):
    version: int
    settings: AiOverrides
    changed: list[str]
    actor: str
    at: datetime


@dataclass(frozen=True)
class Wiring:
    """What the routes need, from the app's lifespan (state ``settings``)."""

    pool: Pool
    defaults: Behaviour
    numbers: Mapping[str, NumberConfig]
    published: Callable[[], None]  # the outbox has a new event


async def wiring(request: Request) -> Wiring:
    w: Wiring = request.state.settings
    return w


Wired = Annotated[Wiring, Depends(wiring)]


def _sources(number: str, w: Wiring, api: AiOverrides | None) -> dict[str, Source]:
    file = w.numbers.get(number)
    found: dict[str, Source] = {}
    for name in Effective.model_fields:
        if api is not None and getattr(api, name) is not None:
            found[name] = "operators"
        elif file is not None and getattr(file, name) is not None:
            found[name] = "file"
        else:
            found[name] = "default"
    return found


async def _view(pool: Pool, number: str, w: Wiring) -> NumberSettings:
    history = await number_settings.versions(pool, number)
    latest = history[0] if history else None
    api = latest["settings"] if latest else None
    b = behaviour_for(number, w.defaults, w.numbers, {number: api} if api else {})
    return NumberSettings(
        number=number,
        settings=api or AiOverrides(),
        version=latest["version"] if latest else 0,
        updated_at=latest["at"] if latest else None,
        updated_by=latest["actor"] if latest else None,
        effective=Effective(
            system_prompt=b.persona.system_prompt,
            model=b.persona.model,
            max_tokens=b.persona.max_tokens,
            temperature=b.persona.temperature,
            fallback_reply=b.fallback_reply,
            history_turns=b.history_turns,
            enabled=b.enabled,
        ),
        sources=_sources(number, w, api),
    )


def _owned(number: str, who: Caller) -> str:
    if not who.owns(number):
        raise HTTPException(404, f"{bare_number(number)} is not one of your numbers")
    return bare_number(number)


@router.get("/numbers/{number}/ai-settings", response_model=NumberSettings, responses=NOT_FOUND)
async def get_settings(number: Number, w: Wired, who: Reader) -> NumberSettings:
    """The AI's settings for one of our numbers (SMS and WhatsApp alike)."""
    return await _view(w.pool, _owned(number, who), w)


@router.put("/numbers/{number}/ai-settings", response_model=NumberSettings, responses=NOT_FOUND)
async def put_settings(number: Number, change: Change, w: Wired, who: Writer) -> NumberSettings:
    """Replace the operators' settings of a number; a new version if anything changed, used
    from the next message on."""
    bare = _owned(number, who)
    settings = AiOverrides.model_validate(change.model_dump(exclude={"changed_by"}))
    if await number_settings.change(w.pool, bare, settings, change.changed_by):
        w.published()
    return await _view(w.pool, bare, w)


@router.get(
    "/numbers/{number}/ai-settings/versions", response_model=list[Version], responses=NOT_FOUND
)
async def list_versions(number: Number, w: Wired, who: Reader) -> list[Version]:
    """Every version, newest first: who changed which settings, when."""
    found = await number_settings.versions(w.pool, _owned(number, who))
    if not found:
        raise HTTPException(404, f"no settings were ever set for {bare_number(number)}")
    return [Version(**{**v, "changed": list(v["changed"])}) for v in found]


@router.get("/ai-settings", response_model=list[NumberSettings])
async def list_settings(w: Wired, who: Reader) -> list[NumberSettings]:
    """Every number with settings from the operators or the file (a tenant's: every number
    of its own, set or not)."""
    numbers = sorted(
        {*await number_settings.current(w.pool), *w.numbers} if who.numbers is None else who.numbers
    )
    return [await _view(w.pool, number, w) for number in numbers]
