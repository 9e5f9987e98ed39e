"""SMS length arithmetic: GSM-7 vs UCS-2 encoding and segment counts."""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
GSM_CHARS = frozenset(_GSM_BASIC + _GSM_EXTENDED)
MAX_BODY = 1600


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if all(ch in GSM_CHARS for ch in text) else "UCS-2"


def _units(text: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        # Extended characters take two septets (escape + char).
        return sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
    # Characters outside the BMP (most emoji) take two UTF-16 code units.
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _per_segment(encoding: Encoding) -> tuple[int, int]:
    """Units in a single-segment message, and in each part of a multi-part one."""
    return (160, 153) if encoding == "GSM-7" else (70, 67)


def segments(text: str) -> tuple[int, Encoding]:
    """How many SMS segments ``text`` takes, and in which encoding."""
    encoding = encoding_of(text)
    units = _units(text, encoding)
    single, multi = _per_segment(encoding)
    if units <= single:
        return 1, encoding
    return -(-units // multi), encoding


def fit_segments(text: str, max_segments: int) -> str:
    """Cut ``text`` to at most ``max_segments`` SMS segments (and ``MAX_BODY`` characters),
    where ``trim_to`` would: so a GSM-7 answer stays GSM-7 (a "…" would make all of it
    UCS-2, which holds less than half as much per segment)."""
    text = text.strip()
    count, encoding = segments(text)
    if count <= max_segments and len(text) <= MAX_BODY:
        return text
    single, multi = _per_segment(encoding)
    budget = single if max_segments == 1 else multi * max_segments
    limit = used = 0
    for ch in text:
        used += _units(ch, encoding)
        if used > budget or limit == MAX_BODY:
            break
        limit += 1
    return trim_to(text, limit)


def trim_to(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a sentence end where one is near,
    else after a word with an ellipsis in the text's own encoding ("..." in GSM-7)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    window = text[:limit]
    cut = max(window.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "!\n", "?\n"))
    if cut >= limit // 3:
        return window[: cut + 1].rstrip()
    if window[-1] in ".!?":
        return window
    room = text[: max(limit - 3, 0)]
    space = room.rfind(" ")
    kept = room[:space] if space > limit // 2 else room
    kept = kept.rstrip(" ,;:")
    return kept + ("..." if encoding_of(kept) == "GSM-7" else "…")
