"""Pure decisions of the sender: what a Twilio answer means for a reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Twilio REST error codes that will not change on retry.
PERMANENT_CODES = frozenset(
    {
        21211,  # invalid To
        21408,  # region not enabled
        21610,  # recipient unsubscribed (STOP)
        21612,  # cannot route To from this From
        21614,  # To is not a mobile number
        63016,  # WhatsApp free-form outside the 24-hour window
        21617,  # body too long
    }
)
OPTED_OUT_CODE = 21610


@dataclass(frozen=True)
class Outcome:
    kind: Literal["sent", "retry", "failed", "found"]
    message_sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    # Twilio answered that it did not take the message (a 429 on create): the next attempt
    # may send without looking first. Anything else that is not an answer (a time-out, a
    # 5xx, a dropped connection) may have been taken.
    not_taken: bool = False
    # "found": messages Twilio lists that an earlier attempt may have sent, oldest first.
    candidates: tuple[str, ...] = ()
    # "sent" as a WhatsApp template: which.
    content_sid: str | None = None


def classify_error(http_status: int | None, code: int | None, message: str) -> Outcome:
    """Transient (429, 5xx, network) → retry; anything else Twilio refused → failed."""
    if code in PERMANENT_CODES:
        return Outcome("failed", error_code=code, error_message=message)
    if http_status is None or http_status == 429 or http_status >= 500 or code == 20429:
        return Outcome("retry", error_code=code, error_message=message)
    return Outcome("failed", error_code=code, error_message=message)


def backoff_s(attempt: int) -> float:
    return float(min(0.5 * 2 ** (attempt - 1), 60.0))


def next_try(attempts: int, elapsed_s: float, window_s: float, *, ambiguous: bool) -> float | None:
    """Seconds until the next attempt after a failed one, or None to give up.

    Retries go on for ``window_s`` from the first attempt (a Twilio outage of some minutes
    must not fail replies for good). Past it, a reply whose last attempt may have reached
    Twilio is still not called failed: the next attempts only look it up, until Twilio
    answers whether it has it."""
    delay = backoff_s(attempts)
    if elapsed_s + delay <= window_s or ambiguous:
        return delay
    return None


def pick_unclaimed(candidates: tuple[str, ...], taken: set[str]) -> str | None:
    """The oldest listed message no other reply has recorded as its own: two identical
    replies to one person (the fallback apology) must not both claim one message."""
    return next((sid for sid in candidates if sid not in taken), None)
