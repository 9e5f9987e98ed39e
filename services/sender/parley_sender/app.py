"""The sender process: consumer, send workers, outbox relay, and health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from parley_sender import store
from parley_sender.service import SenderProjection, SenderService
from parley_sender.settings import SenderSettings
from parley_sender.twilio_client import TwilioMessaging
from parley_shared import topics
from parley_shared.db import OutboxRelay
from parley_shared.runtime import ProjectionRuntime, health_routes

CONSUMED = [topics.REPLY_GENERATED, topics.MESSAGE_SENT, topics.MESSAGE_RECEIVED]


def create_app(settings: SenderSettings) -> FastAPI:
    runtime = ProjectionRuntime(settings, store.SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool, publisher = await runtime.start(store.SCHEMA, settings.sender_max_in_flight + 4)
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
        runtime.consume(CONSUMED, service.projection)
        runtime.background("workers", service.run_workers)
        runtime.background("outbox relay", relay.run)
        try:
            yield {}
        finally:
            await runtime.close()
            await twilio.close()

    app = FastAPI(
        title="Parley sender", summary="Sends each reply once through Twilio.", lifespan=lifespan
    )
    health_routes(app, runtime.ready)
    return app
