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


def segments(text: str) -> tuple[int, Encoding]:
    """How many SMS segments ``text`` takes, and in which encoding."""
    encoding = encoding_of(text)
    if encoding == "GSM-7":
        # Extended characters take two septets (escape + char).
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        single, multi = 160, 153
    else:
        # Characters outside the BMP (most emoji) take two UTF-16 code units.
        units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
        single, multi = 70, 67
    if units <= single:
        return 1, encoding
    return -(-units // multi), encoding


def trim_to(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a sentence end where one is near."""
    text = text.strip()
    if len(text) <= limit:
        return text
    window = text[:limit]
    cut = max(window.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "!\n", "?\n"))
    if cut >= limit // 3:
        return window[: cut + 1].rstrip()
    if window[-1] in ".!?":
        return window
    space = window.rfind(" ")
    return (window[: space if space > limit // 2 else limit - 1]).rstrip(" ,;:") + "…"
