"""Pure rules of the conversation service: page cursors, handoffs, operators' messages."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Literal


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


Handoff = Literal["ai", "requested", "agent"]
"""Who answers a conversation: the AI; the AI, but the participant asked for a person; a
person (the AI is paused)."""


def handoff_state(last_change: str | None) -> Handoff:
    """The state after the latest of a conversation's handoff changes (and requests)."""
    return {"taken_over": "agent", "requested": "requested"}.get(last_change or "", "ai")  # type: ignore[return-value]


def refuse_handoff(state: Handoff, action: Literal["taken_over", "handed_back"]) -> str | None:
    """Why an operator's takeover or hand-back cannot be done now, or None."""
    if action == "taken_over" and state == "agent":
        return "a person has this conversation already"
    if action == "handed_back" and state != "agent":
        return "nobody has taken this conversation over"
    return None


def refuse_send(
    closed: bool, opted_out: bool, window_open: bool = True, template: bool = False
) -> str | None:
    """Why an operator's message cannot be sent in a conversation, or None."""
    if opted_out:
        return "the participant opted out (STOP); nothing may be sent until they text START"
    if closed:
        return "the conversation is closed; reopen it first"
    if not window_open and not template:
        return (
            "outside WhatsApp's 24-hour window since the participant's last message: "
            "send an approved template (template.content_sid)"
        )
    return None
