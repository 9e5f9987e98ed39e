"""The analytics process: projection consumer and the analytics API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_analytics import store
from parley_analytics.api import router
from parley_analytics.service import AnalyticsService
from parley_analytics.settings import AnalyticsSettings
from parley_shared import topics
from parley_shared.db import apply_schema, create_pool
from parley_shared.kafka import EventConsumer, KafkaPublisher, ensure_topics
from parley_shared.runtime import health_routes, keep_running

CONSUMED = [
    topics.MESSAGE_RECEIVED,
    topics.REPLY_GENERATED,
    topics.MESSAGE_SENT,
    topics.STATUS_UPDATED,
    topics.CONVERSATION_CHANGED,
]


def create_app(settings: AnalyticsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await create_pool(settings.database_url, schema=settings.db_schema)
        await apply_schema(pool, store.SERVICE, store.SCHEMA)
        publisher = KafkaPublisher(settings)  # for dead letters only
        await publisher.start()
        service = AnalyticsService(pool=pool)
        consumer = EventConsumer(
            settings,
            topics=CONSUMED,
            group_id=settings.kafka_group_id or "parley-analytics",
            handler=service.handle,
            batch_handler=service.handle_batch,
            publisher=publisher,
        )

        async def consume() -> None:
            await ensure_topics(settings)
            await consumer.run()

        task = asyncio.create_task(keep_running("analytics consumer", consume))
        try:
            yield {
                "pool": pool,
                "api_token": settings.api_token.get_secret_value(),
                "prices": settings.analytics_model_prices,
            }
        finally:
            consumer.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await publisher.stop()
            await pool.close()

    app = FastAPI(
        title="Parley analytics",
        summary="Volumes, engagement, response times, delivery and AI cost, from the log.",
        lifespan=lifespan,
    )
    app.include_router(router)

    async def ready() -> bool:
        return True

    health_routes(app, ready)
    return app
