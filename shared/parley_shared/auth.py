"""Bearer-token check and the documented error shapes of the operators' APIs.

Errors have one of two shapes, both in every OpenAPI document: ``{"detail": "…"}`` for
401/404/409, and FastAPI's validation shape, ``{"detail": [{"loc", "msg", "type"}]}``, for
every 422, including the checks a schema cannot express (an unknown cursor, a range that ends
before it starts), so a client parses one 422 shape.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

bearer = HTTPBearer(auto_error=False)


class Problem(BaseModel):
    detail: str


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such resource"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not possible in the resource's current state"}
}


def invalid(name: str, message: str, where: str = "query") -> HTTPException:
    """A 422 in the validation shape, for a parameter the schema alone cannot judge."""
    return HTTPException(422, [{"loc": [where, name], "msg": message, "type": "value_error"}])


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <API_TOKEN>``; the expected
    token comes from the app's lifespan state (``api_token``)."""
    expected: str = request.state.api_token
    if (
        not expected
        or credentials is None
        or not hmac.compare_digest(credentials.credentials.encode(), expected.encode())
    ):
        raise HTTPException(
            401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
