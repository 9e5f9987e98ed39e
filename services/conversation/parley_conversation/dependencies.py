"""What the routes depend on: the service, and which conversations the caller may see (those
on its tenant's numbers; all, for the admin). Another tenant's conversation is a 404, as if
it did not exist."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, HTTPException, Request

from parley_conversation import views
from parley_conversation.service import ConversationService
from parley_shared.tenancy import Reader, writer


async def get_service(request: Request) -> ConversationService:
    service: ConversationService = request.state.service
    return service


Service = Annotated[ConversationService, Depends(get_service)]


async def visible(conversation_id: UUID, who: Reader, service: Service) -> None:
    if who.numbers is None:
        return  # the admin: the route itself says 404 for a conversation that is not there
    address = await views.address_of(service.pool, conversation_id)
    if address is None or not who.owns(address):
        raise HTTPException(404, f"conversation {conversation_id} not found")


# Route dependencies: read one conversation; change it (a token that may write).
SEES = [Depends(visible)]
CHANGES = [Depends(writer), Depends(visible)]
