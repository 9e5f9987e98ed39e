"""Pure rules of the conversation service: page cursors."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any


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
