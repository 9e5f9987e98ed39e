"""The analytics process: projection consumer and the analytics API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_analytics import breakdown, handoffs_api, tables
from parley_analytics.api import router
from parley_analytics.service import AnalyticsService
from parley_analytics.settings import AnalyticsSettings
from parley_shared import topics
from parley_shared.runtime import HTTP_TELEMETRY, ProjectionRuntime, allow_browsers, health_routes
from parley_shared.tenancy import Tenancy

CONSUMED = [
    topics.MESSAGE_RECEIVED,
    topics.REPLY_GENERATED,
    topics.MESSAGE_SENT,
    topics.STATUS_UPDATED,
    topics.CONVERSATION_CHANGED,
    topics.TENANTS_CHANGED,
    topics.PARTICIPANTS_CHANGED,
    topics.CALL_UPDATED,
    topics.EMAIL_RECEIVED,
]


def create_app(settings: AnalyticsSettings) -> FastAPI:
    runtime = ProjectionRuntime(settings, tables.SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await runtime.start(tables.MIGRATIONS)
        runtime.consume(CONSUMED, AnalyticsService(pool, settings.human_words), read_model=True)
        try:
            yield {
                "pool": pool,
                "tenancy": Tenancy(pool, tables.SERVICE, settings.api_token.get_secret_value()),
                "prices": settings.model_prices,
            }
        finally:
            await runtime.close()

    app = FastAPI(
        title="Parley analytics",
        summary="Volumes, engagement, response times, delivery and AI cost, from the log.",
        lifespan=lifespan,
        telemetry=HTTP_TELEMETRY,
    )
    app.include_router(router)
    app.include_router(handoffs_api.router)
    app.include_router(breakdown.router)
    health_routes(app, runtime.ready)
    allow_browsers(app)
    return app
