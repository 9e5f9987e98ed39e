"""What the gateway and the sender both read from Telnyx: its error objects."""

from __future__ import annotations


def error_code(errors: object) -> int | None:
    """Telnyx's first error code ("40300", in a webhook's ``errors`` or an API refusal's) as a
    number, as Twilio's are."""
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    code = errors[0].get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return int(code) if isinstance(code, str) and code.isdigit() and len(code) < 10 else None
