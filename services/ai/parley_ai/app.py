"""The ai service process: consumer, reply workers, outbox relay, and health endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from openai import AsyncOpenAI
from pydantic import TypeAdapter

from parley_ai import store
from parley_ai.core import NumberConfig, Persona
from parley_ai.llm import OfflineResponder, OpenAIResponder, Responder
from parley_ai.service import AiProjection, AiService
from parley_ai.settings import AiSettings
from parley_shared import topics
from parley_shared.db import OutboxRelay, apply_schema, create_pool
from parley_shared.kafka import EventConsumer, KafkaPublisher, ensure_topics
from parley_shared.runtime import health_routes, keep_running

CONSUMED = [topics.MESSAGE_RECEIVED, topics.REPLY_GENERATED, topics.CONVERSATION_CHANGED]


def load_numbers(settings: AiSettings) -> dict[str, NumberConfig]:
    if settings.ai_number_config is None:
        return {}
    raw = json.loads(settings.ai_number_config.read_text())
    return TypeAdapter(dict[str, NumberConfig]).validate_python(raw)


def build_responder(settings: AiSettings) -> Responder:
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return OfflineResponder()
    return OpenAIResponder(
        AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url or None,
            timeout=settings.ai_timeout_s,
            max_retries=settings.ai_max_retries,
        )
    )


def create_app(settings: AiSettings, responder: Responder | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await create_pool(
            settings.database_url,
            schema=settings.db_schema,
            max_size=settings.ai_max_in_flight + 4,
        )
        await apply_schema(pool, store.SERVICE, store.SCHEMA)
        publisher = KafkaPublisher(settings)
        await publisher.start()
        relay = OutboxRelay(pool, store.SERVICE, publisher)
        model = responder or build_responder(settings)
        service = AiService(
            pool=pool,
            responder=model,
            relay=relay,
            defaults=Persona(
                settings.ai_system_prompt,
                settings.openai_model,
                settings.ai_max_tokens,
                settings.ai_temperature,
            ),
            numbers=load_numbers(settings),
            history_turns=settings.ai_history_turns,
            fallback_reply=settings.ai_fallback_reply,
            max_in_flight=settings.ai_max_in_flight,
            projection=AiProjection(pool),
            settle_s=settings.ai_settle_ms / 1000,
        )
        consumer = EventConsumer(
            settings,
            topics=CONSUMED,
            group_id=settings.kafka_group_id or "parley-ai",
            handler=service.handle,
            batch_handler=service.projection.handle_batch,
            # A close must be known before a message that followed it is answered.
            first=[topics.CONVERSATION_CHANGED],
            publisher=publisher,
        )

        async def consume() -> None:
            await ensure_topics(settings)
            await consumer.run()

        tasks = [
            asyncio.create_task(keep_running("ai consumer", consume)),
            asyncio.create_task(keep_running("ai workers", service.run_workers)),
            asyncio.create_task(keep_running("ai outbox relay", relay.run)),
        ]
        try:
            yield {"publisher": publisher, "pool": pool}
        finally:
            consumer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await model.close()
            await publisher.stop()
            await pool.close()

    app = FastAPI(title="Parley ai", lifespan=lifespan)

    async def ready() -> bool:
        return True

    health_routes(app, ready)
    return app
