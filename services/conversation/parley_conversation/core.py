"""Pure rules of the conversation service: delivery status order, ids, cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from parley_shared.identity import PARLEY_NAMESPACE

RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "partially_delivered": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})


def next_status(current: str | None, incoming: str) -> str:
    """Statuses only move forward; a final one stays, except WhatsApp ``read`` after
    ``delivered``. Unknown statuses never replace a known one."""
    if current is None:
        return incoming
    if current in FINAL:
        return "read" if current == "delivered" and incoming == "read" else current
    if RANK.get(incoming, -1) > RANK.get(current, -1):
        return incoming
    return current


def fold_statuses(initial: str | None, seen: Iterable[str]) -> str | None:
    status = initial
    for incoming in seen:
        status = next_status(status, incoming)
    return status


def conversation_id_for(first_inbound: UUID) -> UUID:
    """A conversation is named by the message that opened it: the same on every replay."""
    return uuid5(PARLEY_NAMESPACE, f"conversation/{first_inbound}")


class BadCursor(ValueError):
    pass


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this API issued") from exc
    if (
        not isinstance(parts, list)
        or len(parts) != size
        or not all(isinstance(p, str) for p in parts)
    ):
        raise BadCursor("cursor is not one this API issued")
    return parts
