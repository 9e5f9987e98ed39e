"""The documented error shapes of the operators' APIs (who may call: ``tenancy``).

Errors have one of two shapes, both in every OpenAPI document: ``{"detail": "…"}`` for
401/404/409, and FastAPI's validation shape, ``{"detail": [{"loc", "msg", "type"}]}``, for
every 422, including the checks a schema cannot express (an unknown cursor, a range that ends
before it starts), so a client parses one 422 shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, revoked or wrong bearer token"},
    403: {"model": Problem, "description": "The token's scope does not allow this"},
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
