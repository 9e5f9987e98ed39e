"""Log lines as JSON (``LOG_FORMAT=json``, what the containers use) or text, each with the
trace and span it was written in, phone numbers masked (``redact``) either way."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

from opentelemetry import trace

from parley_shared import redact


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, trace and span ids,
    and the exception, if any. The message has been masked by the handler's filter."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        failure = record.exc_text or (
            self.formatException(record.exc_info) if record.exc_info else None
        )
        if failure:
            line["exception"] = failure
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = trace.get_current_span().get_span_context()
        return f"{text} trace={context.trace_id:032x}" if context.is_valid else text


def setup_logging(service: str, level: str | None = None, form: str | None = None) -> None:
    """Root logging for a service process: one handler to stderr, masked, in ``LOG_FORMAT``."""
    handler = logging.StreamHandler()
    kind = (form or os.environ.get("LOG_FORMAT", "text")).lower()
    handler.setFormatter(JsonFormatter(service) if kind == "json" else TextFormatter(service))
    redact.install(handler)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
