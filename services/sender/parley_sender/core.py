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
    kind: Literal["sent", "retry", "failed"]
    message_sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error_message: str | None = None


def classify_error(http_status: int | None, code: int | None, message: str) -> Outcome:
    """Transient (429, 5xx, network) → retry; anything else Twilio refused → failed."""
    if code in PERMANENT_CODES:
        return Outcome("failed", error_code=code, error_message=message)
    if http_status is None or http_status == 429 or http_status >= 500 or code == 20429:
        return Outcome("retry", error_code=code, error_message=message)
    return Outcome("failed", error_code=code, error_message=message)


def backoff_s(attempt: int) -> float:
    return float(min(0.5 * 2 ** (attempt - 1), 60.0))
