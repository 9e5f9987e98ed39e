"""Start-up helpers for service entrypoints: settings with readable errors, logging, tracing."""

from __future__ import annotations

import logging
import os
import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from parley_shared.settings import BusSettings, describe_errors
from parley_shared.tracing import setup_tracing

S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Read settings from the environment, or exit with one line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        sys.stderr.write(f"{cls.__name__}: {describe_errors(exc)}\n")
        raise SystemExit(2) from None


def configure(service: str, settings: BusSettings) -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    setup_tracing(
        settings.otel_service_name or f"parley-{service}", settings.otel_exporter_otlp_endpoint
    )
