"""The operators' conversation API (bearer token: the admin's or a tenant's, scoped to it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as FastApiPath
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from parley_conversation import views
from parley_conversation.core import BadCursor, decode_cursor, encode_cursor
from parley_conversation.dependencies import CHANGES, SEES, Service
from parley_conversation.media import MediaRefused, MediaSource, MediaUnavailable
from parley_conversation.service import Conflict, ConversationService, NotFound
from parley_shared.auth import CONFLICT, NOT_FOUND, UNAUTHORIZED, Problem, invalid
from parley_shared.tenancy import Reader, caller

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=UNAUTHORIZED)


class Conversation(BaseModel):
    id: UUID
    channel: str
    # The messaging provider its messages come and go through ("twilio", "telnyx").
    provider: str
    our_address: str
    participant: str
    profile_name: str | None
    state: Literal["open", "closed"]
    opted_out: bool
    opened_at: datetime
    closed_at: datetime | None
    # Who answers: the AI; the AI, though the participant asked for a person; a person.
    handoff: Literal["ai", "requested", "agent"]
    handoff_at: datetime | None
    handoff_agent: str | None
    # WhatsApp: until when free-form messages may be sent (24 h after their last message);
    # after it, only templates. None for SMS, or before they wrote.
    whatsapp_window_closes_at: datetime | None
    first_activity_at: datetime | None
    last_activity_at: datetime | None
    messages_in: int
    messages_out: int
    # Calls and emails in its history, beside the messages.
    calls: int = 0
    emails: int = 0


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_cursor: str | None


class Call(BaseModel):
    """A voice call in the thread: under way, completed (answered) or missed."""

    outcome: Literal["started", "completed", "missed"]
    duration_s: int | None
    provider: str


class Email(BaseModel):
    subject: str
    sender_name: str | None
    attachments: int


class Message(BaseModel):
    """An entry of a conversation's history: a message, or a call or an email (``kind``),
    whose details are in ``call`` or ``email``; a call's status is the provider's."""

    id: UUID
    kind: Literal["message", "call", "email"] = "message"
    direction: Literal["inbound", "outbound"]
    body: str
    media: list[dict[str, Any]]
    message_sid: str | None
    status: str | None
    error_code: int | None
    status_history: list[dict[str, Any]]
    ai: dict[str, Any] | None
    # The operator who wrote it, for an agent's message.
    agent: str | None
    # The WhatsApp template it went out as, if it did.
    content_sid: str | None
    # A WhatsApp location the participant shared: latitude, longitude, address, label.
    location: dict[str, Any] | None
    call: Call | None = None
    email: Email | None = None
    at: datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


class OptOut(BaseModel):
    participant: str
    channel: str
    our_address: str
    since: datetime | None


@router.get("/opt-outs", response_model=list[OptOut])
async def list_opt_outs(service: Service, who: Reader) -> list[OptOut]:
    """Who opted out (STOP, or Twilio refused a send with 21610) and has not texted START:
    no AI reply and no agent's message reaches them. The latest 1,000."""
    rows = await views.opt_outs(service.pool, who.addresses())
    return [OptOut.model_validate(row) for row in rows]


def _not_found(conversation: UUID) -> HTTPException:
    return HTTPException(404, f"conversation {conversation} not found")


@router.get("/conversations", response_model=ConversationPage)
async def list_conversations(
    service: Service,
    who: Reader,
    state: Literal["open", "closed"] | None = None,
    channel: Literal["sms", "whatsapp", "email"] | None = None,
    participant: Annotated[str | None, Query(max_length=64)] = None,
    handoff: Literal["ai", "requested", "agent"] | None = None,
    our_number: Annotated[str | None, Query(pattern=r"^(whatsapp:)?\+[1-9][0-9]{5,14}$")] = None,
    order: Literal["opened", "activity"] = "opened",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationPage:
    """Newest first: by when they opened, or (``order=activity``, an inbox) by their latest
    message. Pass ``next_cursor`` back as ``cursor`` for the next page."""
    before = None
    if cursor is not None:
        try:
            kind, at, last_id = decode_cursor(cursor, 3)
            if kind != order:
                raise BadCursor("a cursor of another order")
            before = (datetime.fromisoformat(at), UUID(last_id))
        except (BadCursor, ValueError) as exc:
            raise invalid("cursor", "not a cursor this API returned") from exc
    rows = await views.conversations(
        service.pool,
        state=state,
        channel=channel,
        participant=participant,
        handoff=handoff,
        before=before,
        limit=limit + 1,
        window_s=service.window_s,
        addresses=who.addresses(),
        our_number=our_number,
        order=order,
    )
    items = [Conversation.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return ConversationPage(
        items=items,
        next_cursor=encode_cursor(order, _position(items[-1], order), items[-1].id)
        if more
        else None,
    )


def _position(c: Conversation, order: Literal["opened", "activity"]) -> datetime:
    if order == "opened":
        return c.opened_at
    return c.last_activity_at or c.opened_at


@router.get(
    "/conversations/{conversation_id}",
    response_model=Conversation,
    responses=NOT_FOUND,
    dependencies=SEES,
)
async def get_conversation(conversation_id: UUID, service: Service) -> Conversation:
    row = await views.conversation(service.pool, conversation_id, service.window_s)
    if row is None:
        raise _not_found(conversation_id)
    return Conversation.model_validate(row)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    responses=NOT_FOUND,
    dependencies=SEES,
)
async def list_messages(
    conversation_id: UUID,
    service: Service,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessagePage:
    """The conversation's history, oldest first, each message with its current status."""
    if not await views.exists(service.pool, conversation_id):
        raise _not_found(conversation_id)
    after = None
    if cursor is not None:
        try:
            anchor, direction, last_id = decode_cursor(cursor, 3)
            after = (datetime.fromisoformat(anchor), direction, UUID(last_id))
        except (BadCursor, ValueError) as exc:
            raise invalid("cursor", "not a cursor this API returned") from exc
    rows = await views.messages(service.pool, conversation_id, after=after, limit=limit + 1)
    items = [Message.model_validate(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return MessagePage(
        items=items,
        next_cursor=encode_cursor(last["anchor_at"], last["direction"], last["id"])
        if last is not None
        else None,
    )


async def _change(
    service: ConversationService, conversation_id: UUID, action: Literal["closed", "reopened"]
) -> None:
    try:
        await service.change(conversation_id, action, actor="operator")
    except NotFound as exc:
        raise _not_found(conversation_id) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post(
    "/conversations/{conversation_id}/close",
    response_model=Conversation,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=CHANGES,
)
async def close_conversation(conversation_id: UUID, service: Service) -> Conversation:
    """Close: no more AI replies; the participant's next message opens a new conversation."""
    await _change(service, conversation_id, "closed")
    return await get_conversation(conversation_id, service)


@router.post(
    "/conversations/{conversation_id}/reopen",
    response_model=Conversation,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=CHANGES,
)
async def reopen_conversation(conversation_id: UUID, service: Service) -> Conversation:
    """Reopen a closed conversation, unless the participant has started a newer one."""
    await _change(service, conversation_id, "reopened")
    return await get_conversation(conversation_id, service)


@router.get(
    "/conversations/{conversation_id}/messages/{message_id}/media/{index}",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}, "description": "The media's bytes"},
        403: {"model": Problem, "description": "The URL is not on a Twilio media host"},
        502: {"model": Problem, "description": "Twilio did not hand the media over"},
        503: {"model": Problem, "description": "No Twilio credentials configured here"},
    },
    dependencies=SEES,
)
async def get_media(
    conversation_id: UUID,
    message_id: UUID,
    index: Annotated[int, FastApiPath(ge=0, le=9)],
    request: Request,
    service: Service,
) -> StreamingResponse:
    """A participant's attachment, fetched from Twilio with the account's credentials (media
    URLs need them), so the console never links to Twilio directly."""
    url = await views.media_url(service.pool, conversation_id, message_id, index)
    if url is None:
        raise HTTPException(404, "no such media in this conversation")
    source: MediaSource | None = request.state.media
    if source is None:
        raise HTTPException(503, "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set here")
    try:
        content_type, body = await source.open(url)
    except MediaRefused as exc:
        raise HTTPException(403, str(exc)) from exc
    except MediaUnavailable as exc:
        raise HTTPException(502, str(exc)) from exc
    return StreamingResponse(
        body, media_type=content_type, headers={"Cache-Control": "private, max-age=300"}
    )
