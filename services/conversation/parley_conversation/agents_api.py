"""The operators' API for what people do in a conversation: take it over from the AI, write
to the participant, hand it back (a token that may write, scoped to its tenant)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException
from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints, model_validator

from parley_conversation import views
from parley_conversation.agents import timeline
from parley_conversation.api import Conversation, get_conversation
from parley_conversation.dependencies import CHANGES, SEES, Service
from parley_conversation.service import Conflict, NotFound
from parley_shared.auth import CONFLICT, NOT_FOUND, UNAUTHORIZED
from parley_shared.events import NO_NUL
from parley_shared.tenancy import caller

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)

Agent = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80, pattern=NO_NUL)
]
T = TypeVar("T")


class Handoff(BaseModel):
    agent: Agent = Field(description="The person taking over or handing back, as shown in history")


Variable = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)]


class TemplateSend(BaseModel):
    """An approved WhatsApp template (Twilio Content API), e.g. to write first or after the
    24-hour window closed."""

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    variables: dict[
        Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_]{1,32}$")], Variable
    ] = Field(default_factory=dict, max_length=20)


class AgentMessage(BaseModel):
    agent: Agent = Field(description="The person writing, as shown in history")
    body: Annotated[str, StringConstraints(max_length=1600, pattern=NO_NUL)] = ""
    media_urls: list[AnyHttpUrl] = Field(default_factory=list, max_length=10)
    template: TemplateSend | None = None

    @model_validator(mode="after")
    def _something(self) -> AgentMessage:
        if not self.body.strip() and not self.media_urls and self.template is None:
            raise ValueError("a message needs a body, media or a template")
        return self


class HandoffEntry(BaseModel):
    action: Literal["requested", "taken_over", "handed_back"]
    at: datetime
    agent: str | None


class Requested(BaseModel):
    id: UUID = Field(description="The message's id in the conversation's history")
    conversation_id: UUID
    requested_at: datetime


async def _do(conversation_id: UUID, action: Callable[[], Awaitable[T]]) -> T:
    try:
        return await action()
    except NotFound as exc:
        raise HTTPException(404, f"conversation {conversation_id} not found") from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc


async def _handoff(
    conversation_id: UUID, action: Literal["taken_over", "handed_back"], by: Handoff, s: Service
) -> Conversation:
    await _do(conversation_id, lambda: s.handoff(conversation_id, action, by.agent))
    return await get_conversation(conversation_id, s)


@router.post(
    "/conversations/{conversation_id}/takeover",
    response_model=Conversation,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=CHANGES,
)
async def take_over(conversation_id: UUID, by: Handoff, service: Service) -> Conversation:
    """A person answers from now on: the AI sends nothing more in this conversation, not even
    a reply it was writing at this moment."""
    return await _handoff(conversation_id, "taken_over", by, service)


@router.post(
    "/conversations/{conversation_id}/handback",
    response_model=Conversation,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=CHANGES,
)
async def hand_back(conversation_id: UUID, by: Handoff, service: Service) -> Conversation:
    """The AI answers the participant's next messages again."""
    return await _handoff(conversation_id, "handed_back", by, service)


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=Requested,
    status_code=202,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=CHANGES,
)
async def send_message(conversation_id: UUID, message: AgentMessage, service: Service) -> Requested:
    """Send a message as a person, or a WhatsApp template. Accepted means it is on the log:
    the sender sends it once and its delivery shows in the history like a reply's. Free-form
    text to a WhatsApp participant whose 24-hour window has closed is a 409: send a template."""
    event = await _do(
        conversation_id,
        lambda: service.send(
            conversation_id,
            message.body,
            [str(u) for u in message.media_urls],
            message.agent,
            (message.template.content_sid, message.template.variables)
            if message.template
            else None,
        ),
    )
    return Requested(
        id=event.event_id, conversation_id=conversation_id, requested_at=event.occurred_at
    )


@router.get(
    "/conversations/{conversation_id}/handoffs",
    response_model=list[HandoffEntry],
    responses=NOT_FOUND,
    dependencies=SEES,
)
async def handoff_history(conversation_id: UUID, service: Service) -> list[HandoffEntry]:
    """Who had the conversation when: the participant's requests for a person, takeovers and
    hand-backs, oldest first."""
    if not await views.exists(service.pool, conversation_id):
        raise HTTPException(404, f"conversation {conversation_id} not found")
    return [
        HandoffEntry.model_validate(row) for row in await timeline(service.pool, conversation_id)
    ]
