"""The sender process: consumer, send workers, outbox relay, and health endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_sender import store
from parley_sender.service import SenderProjection, SenderService
from parley_sender.settings import SenderSettings
from parley_sender.twilio_client import TwilioMessaging
from parley_shared import topics
from parley_shared.db import OutboxRelay, apply_schema, create_pool
from parley_shared.kafka import EventConsumer, KafkaPublisher, ensure_topics
from parley_shared.runtime import health_routes, keep_running

CONSUMED = [topics.REPLY_GENERATED, topics.MESSAGE_SENT, topics.MESSAGE_RECEIVED]


def create_app(settings: SenderSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await create_pool(
            settings.database_url,
            schema=settings.db_schema,
            max_size=settings.sender_max_in_flight + 4,
        )
        await apply_schema(pool, store.SERVICE, store.SCHEMA)
        publisher = KafkaPublisher(settings)
        await publisher.start()
        relay = OutboxRelay(pool, store.SERVICE, publisher)
        twilio = TwilioMessaging(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            str(settings.twilio_api_base_url),
            settings.sender_timeout_s,
        )
        service = SenderService(
            pool=pool,
            twilio=twilio,
            relay=relay,
            status_callback=str(settings.public_base_url).rstrip("/") + "/webhooks/twilio/status",
            max_attempts=settings.sender_max_attempts,
            max_in_flight=settings.sender_max_in_flight,
            lease_s=settings.sender_timeout_s * 2,
            projection=SenderProjection(pool),
        )
        consumer = EventConsumer(
            settings,
            topics=CONSUMED,
            group_id=settings.kafka_group_id or "parley-sender",
            handler=service.handle,
            batch_handler=service.projection.handle_batch,
            publisher=publisher,
        )

        async def consume() -> None:
            await ensure_topics(settings)
            await consumer.run()

        tasks = [
            asyncio.create_task(keep_running("sender consumer", consume)),
            asyncio.create_task(keep_running("sender workers", service.run_workers)),
            asyncio.create_task(keep_running("sender outbox relay", relay.run)),
        ]
        try:
            yield {"pool": pool}
        finally:
            consumer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await twilio.close()
            await publisher.stop()
            await pool.close()

    app = FastAPI(title="Parley sender", lifespan=lifespan)

    async def ready() -> bool:
        return True

    health_routes(app, ready)
    return app
