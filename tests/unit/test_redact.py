"""Phone numbers never reach a log line unmasked, whoever logs them and however."""

from __future__ import annotations

import io
import logging

from parley_shared.redact import install, mask


def test_numbers_are_masked_to_their_last_two_digits() -> None:
    assert mask("to +15551234567 and whatsapp:+447700900123") == (
        "to +•••••••••67 and whatsapp:+••••••••••23"
    )
    assert mask("GET /v1/conversations?participant=%2B15551234567") == (
        "GET /v1/conversations?participant=%2B•••••••••67"
    )
    # Not phone numbers: ids, times, amounts.
    for text in ("SM0123456789abcdef", "2026-12-06T18:00:00Z", "cost +12.5%", "+1 day"):
        assert mask(text) == text


def test_a_handler_with_the_filter_masks_messages_arguments_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    install(handler)
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sending to %s", "+15551234567")
        try:
            raise ValueError("invalid To: whatsapp:+447700900123")
        except ValueError:
            logger.exception("send failed")
        # A library's logger going through the same handler (e.g. uvicorn's access log).
        logger.getChild("access").warning('"%s %s"', "GET", "/v1?participant=%2B15551234567")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert "ValueError" in written and "send failed" in written
    for digits in ("5551234567", "7700900123", "2B15551234567"):
        assert digits not in written
