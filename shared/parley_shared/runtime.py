"""Start-up helpers for service entrypoints: settings with readable errors, logging, tracing."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse
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


async def keep_running(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop forever, restarting it with backoff when it crashes.

    A consumer that cannot reach the broker at start-up, or loses it, comes back by itself;
    the service stays up and reports not-ready meanwhile.
    """
    delay = 0.5
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logging.getLogger(__name__).exception("%s crashed; restarting in %.1fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def health_routes(app: FastAPI, ready: Callable[[], Awaitable[bool]]) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        ok = await ready()
        return JSONResponse(
            {"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503
        )
