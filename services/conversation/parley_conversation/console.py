"""The operators' console: a static single-page app (``console/``: plain ES modules, no build
step) served at ``/console/``, and where it finds the other services' APIs."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from parley_conversation.settings import ConversationSettings

ASSETS = Path(__file__).parent / "console"


def mount(app: FastAPI, settings: ConversationSettings) -> None:
    apis = {
        "conversation": "",  # this service: same origin
        "ai": settings.console_ai_url,
        "analytics": settings.console_analytics_url,
        "sender": settings.console_sender_url,
    }

    @app.get("/console/config.json", include_in_schema=False)
    async def config() -> dict[str, str]:
        return apis

    @app.get("/console", include_in_schema=False)
    async def console() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=ASSETS, html=True), name="console")
