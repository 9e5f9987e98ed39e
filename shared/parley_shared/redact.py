"""Keeps participants' phone numbers out of log lines.

Parley's own log calls name events by id, never by number or body. This filter is the net
under them: whatever a line says (an exception from a library, an access log with a
``?participant=`` query, a URL), phone numbers in E.164 form, plain or URL-encoded, are
masked to their last two digits before the line is written. Message bodies cannot be
recognised in free text, so no log call may include one; exceptions that would quote one
(validation errors) are logged by type and location only.
"""

from __future__ import annotations

import logging
import re

# "+15551234567", "whatsapp:+4477…", "%2B15551234567" (a query string).
_PHONE = re.compile(r"(\+|%2[bB])(\d{4,13})(\d{2})(?!\d)")


def mask(text: str) -> str:
    return _PHONE.sub(lambda m: f"{m.group(1)}{'•' * len(m.group(2))}{m.group(3)}", text)


class RedactPhoneNumbers(logging.Filter):
    """Rewrites a record's message (and its traceback) with numbers masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install(handler: logging.Handler) -> None:
    handler.addFilter(RedactPhoneNumbers())
