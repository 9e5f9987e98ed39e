"""The order of Twilio message statuses, shared by every projection of delivery state, and
of a call's status callbacks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

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


def call_progress(outcome: str, at: datetime, status: str) -> tuple[bool, datetime, str]:
    """How far a call's status callback goes, to keep the one that says most about the call:
    one that ends it beats one under way, then the later, then the status's name. Projections
    that merge callbacks in SQL order them the same way."""
    return (outcome != "started", at, status)
