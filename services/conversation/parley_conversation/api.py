"""The operators' conversation API (bearer ``API_TOKEN``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from parley_conversation.core import BadCursor, decode_cursor, encode_cursor
from parley_conversation.service import Conflict, ConversationService, NotFound
from parley_shared.auth import CONFLICT, NOT_FOUND, UNAUTHORIZED, invalid, require_token


async def get_service(request: Request) -> ConversationService:
    service: ConversationService = request.state.service
    return service


Service = Annotated[ConversationService, Depends(get_service)]
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=UNAUTHORIZED)


class Conversation(BaseModel):
    id: UUID
    channel: str
    our_address: str
    participant: str
    profile_name: str | None
    state: Literal["open", "closed"]
    opted_out: bool
    opened_at: datetime
    closed_at: datetime | None
    first_activity_at: datetime | None
    last_activity_at: datetime | None
    messages_in: int
    messages_out: int


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_cursor: str | None


class Message(BaseModel):
    id: UUID
    direction: Literal["inbound", "outbound"]
    body: str
    media: list[dict[str, Any]]
    message_sid: str | None
    status: str | None
    error_code: int | None
    status_history: list[dict[str, Any]]
    ai: dict[str, Any] | None
    at: datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


CONVERSATION_SQL = """
SELECT c.id, t.channel, t.our_address, t.participant, t.profile_name, t.opted_out,
       c.opened_at, c.closed_at,
       CASE WHEN c.closed_at IS NULL THEN 'open' ELSE 'closed' END AS state,
       m.first_at AS first_activity_at, m.last_at AS last_activity_at,
       coalesce(m.n_in, 0) AS messages_in, coalesce(m.n_out, 0) AS messages_out
FROM conversation_conversations c
JOIN conversation_threads t USING (conversation_key)
LEFT JOIN LATERAL (
    SELECT min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           count(*) FILTER (WHERE direction = 'inbound') AS n_in,
           count(*) FILTER (WHERE direction = 'outbound') AS n_out
    FROM conversation_messages WHERE conversation_id = c.id
) m ON true
"""


def _not_found(conversation: UUID) -> HTTPException:
    return HTTPException(404, f"conversation {conversation} not found")


@router.get("/conversations", response_model=ConversationPage)
async def list_conversations(
    service: Service,
    state: Literal["open", "closed"] | None = None,
    channel: Literal["sms", "whatsapp"] | None = None,
    participant: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationPage:
    """Newest first. Pass ``next_cursor`` back as ``cursor`` for the next page."""
    where: list[str] = ["true"]
    args: list[Any] = []
    if state is not None:
        where.append("c.closed_at IS " + ("NULL" if state == "open" else "NOT NULL"))
    if channel is not None:
        args.append(channel)
        where.append(f"t.channel = ${len(args)}")
    if participant is not None:
        args.append(participant.removeprefix("whatsapp:"))
        where.append(f"replace(t.participant, 'whatsapp:', '') = ${len(args)}")
    if cursor is not None:
        try:
            opened, last_id = decode_cursor(cursor, 2)
            args += [datetime.fromisoformat(opened), UUID(last_id)]
        except (BadCursor, ValueError) as exc:
            raise invalid("cursor", "not a cursor this API returned") from exc
        where.append(f"(c.opened_at, c.id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    sql = (
        f"{CONVERSATION_SQL} WHERE {' AND '.join(where)} "
        f"ORDER BY c.opened_at DESC, c.id DESC LIMIT ${len(args)}"
    )
    rows = await service.pool.fetch(sql, *args)
    items = [Conversation.model_validate(dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    return ConversationPage(
        items=items,
        next_cursor=encode_cursor(items[-1].opened_at, items[-1].id) if more else None,
    )


@router.get("/conversations/{conversation_id}", response_model=Conversation, responses=NOT_FOUND)
async def get_conversation(conversation_id: UUID, service: Service) -> Conversation:
    row = await service.pool.fetchrow(f"{CONVERSATION_SQL} WHERE c.id = $1", conversation_id)
    if row is None:
        raise _not_found(conversation_id)
    return Conversation.model_validate(dict(row))


@router.get(
    "/conversations/{conversation_id}/messages", response_model=MessagePage, responses=NOT_FOUND
)
async def list_messages(
    conversation_id: UUID,
    service: Service,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessagePage:
    """The conversation's history, oldest first, each message with its current status."""
    if not await service.pool.fetchval(
        "SELECT 1 FROM conversation_conversations WHERE id = $1", conversation_id
    ):
        raise _not_found(conversation_id)
    args: list[Any] = [conversation_id]
    after = ""
    if cursor is not None:
        try:
            anchor, direction, last_id = decode_cursor(cursor, 3)
            args += [datetime.fromisoformat(anchor), direction, UUID(last_id)]
        except (BadCursor, ValueError) as exc:
            raise invalid("cursor", "not a cursor this API returned") from exc
        after = "AND (m.anchor_at, m.direction, m.id) > ($2, $3, $4)"
    args.append(limit + 1)
    rows = await service.pool.fetch(
        f"""
        SELECT m.id, m.direction, m.body, m.media, m.message_sid, m.status, m.error_code, m.ai,
               m.occurred_at AS at, m.anchor_at,
               coalesce((SELECT json_agg(json_build_object('status', s.status, 'at', s.at,
                                 'error_code', s.error_code) ORDER BY s.at)
                         FROM conversation_statuses s WHERE s.message_sid = m.message_sid),
                        '[]') AS status_history
        FROM conversation_messages m WHERE m.conversation_id = $1 {after}
        ORDER BY m.anchor_at, m.direction, m.id LIMIT ${len(args)}
        """,
        *args,
    )
    items = []
    for r in rows[:limit]:
        record = dict(r)
        for field in ("media", "ai", "status_history"):
            if isinstance(record[field], str):
                record[field] = json.loads(record[field])
        items.append(Message.model_validate(record))
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
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
)
async def close_conversation(conversation_id: UUID, service: Service) -> Conversation:
    """Close: no more AI replies; the participant's next message opens a new conversation."""
    await _change(service, conversation_id, "closed")
    return await get_conversation(conversation_id, service)


@router.post(
    "/conversations/{conversation_id}/reopen",
    response_model=Conversation,
    responses={**NOT_FOUND, **CONFLICT},
)
async def reopen_conversation(conversation_id: UUID, service: Service) -> Conversation:
    """Reopen a closed conversation, unless the participant has started a newer one."""
    await _change(service, conversation_id, "reopened")
    return await get_conversation(conversation_id, service)
