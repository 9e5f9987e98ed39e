"""The conversation service process: projection consumer, outbox relay, operators' API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_conversation import (
    agents_api,
    console,
    live,
    participants_api,
    retention,
    tables,
    tenants_api,
)
from parley_conversation.api import router
from parley_conversation.media import MediaSource
from parley_conversation.service import ConversationService
from parley_conversation.settings import ConversationSettings
from parley_shared import topics
from parley_shared.runtime import HTTP_TELEMETRY, ProjectionRuntime, allow_browsers, health_routes
from parley_shared.tenancy import Tenancy

CONSUMED = [
    topics.MESSAGE_RECEIVED,
    topics.REPLY_GENERATED,
    topics.MESSAGE_SENT,
    topics.STATUS_UPDATED,
    topics.CONVERSATION_CHANGED,
    topics.MESSAGE_REQUESTED,
    topics.TENANTS_CHANGED,
    topics.PARTICIPANTS_CHANGED,
    topics.CALL_UPDATED,
    topics.EMAIL_RECEIVED,
]


def media_source(settings: ConversationSettings) -> MediaSource | None:
    if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        return None
    hosts = tuple(h.strip().lower() for h in settings.twilio_media_hosts.split(",") if h.strip())
    return MediaSource(
        settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(), hosts
    )


def create_app(settings: ConversationSettings) -> FastAPI:
    runtime = ProjectionRuntime(settings, tables.SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await runtime.start(tables.MIGRATIONS)
        changes = live.Changes(settings.database_url, live.channel_of(settings.db_schema))
        runtime.background("live updates", changes.listen)
        service = ConversationService(
            pool,
            runtime.outbox(),
            settings.whatsapp_window_s,
            settings.human_words,
            live_channel=live.channel_of(settings.db_schema),
            keyring=runtime.keyring,
        )
        runtime.consume(CONSUMED, service, read_model=True)
        runtime.background(
            "retention", lambda: retention.keep_sweeping(service, settings.retention_sweep_s)
        )
        try:
            yield {
                "service": service,
                "tenancy": Tenancy(pool, tables.SERVICE, settings.api_token.get_secret_value()),
                "media": media_source(settings),
                "changes": changes,
            }
        finally:
            await runtime.close()

    app = FastAPI(
        title="Parley conversations",
        summary="Conversation history and delivery status, built from the event log.",
        lifespan=lifespan,
        telemetry=HTTP_TELEMETRY,
    )
    app.include_router(router)
    app.include_router(agents_api.router)
    app.include_router(tenants_api.router)
    app.include_router(participants_api.router)
    app.include_router(live.router)
    console.mount(app, settings)
    allow_browsers(app)
    health_routes(app, runtime.ready)
    return app
