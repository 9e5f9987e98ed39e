"""The conversation service process: projection consumer, outbox relay, operators' API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_conversation import store
from parley_conversation.api import router
from parley_conversation.service import ConversationService
from parley_conversation.settings import ConversationSettings
from parley_shared import topics
from parley_shared.db import OutboxRelay, apply_schema, create_pool
from parley_shared.kafka import EventConsumer, KafkaPublisher, ensure_topics
from parley_shared.runtime import health_routes, keep_running

CONSUMED = [
    topics.MESSAGE_RECEIVED,
    topics.REPLY_GENERATED,
    topics.MESSAGE_SENT,
    topics.STATUS_UPDATED,
    topics.CONVERSATION_CHANGED,
]


def create_app(settings: ConversationSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await create_pool(settings.database_url, schema=settings.db_schema)
        await apply_schema(pool, store.SERVICE, store.SCHEMA)
        publisher = KafkaPublisher(settings)
        await publisher.start()
        relay = OutboxRelay(pool, store.SERVICE, publisher)
        service = ConversationService(pool=pool, relay=relay)
        consumer = EventConsumer(
            settings,
            topics=CONSUMED,
            group_id=settings.kafka_group_id or "parley-conversation",
            handler=service.handle,
            batch_handler=service.handle_batch,
            publisher=publisher,
        )

        async def consume() -> None:
            await ensure_topics(settings)
            await consumer.run()

        tasks = [
            asyncio.create_task(keep_running("conversation consumer", consume)),
            asyncio.create_task(keep_running("conversation outbox relay", relay.run)),
        ]
        try:
            yield {"service": service, "api_token": settings.api_token.get_secret_value()}
        finally:
            consumer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await publisher.stop()
            await pool.close()

    app = FastAPI(
        title="Parley conversations",
        summary="Conversation history and delivery status, built from the event log.",
        lifespan=lifespan,
    )
    app.include_router(router)

    async def ready() -> bool:
        return True

    health_routes(app, ready)
    return app
