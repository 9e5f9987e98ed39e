"""The ai service process: consumer, reply workers, outbox relay, and health endpoints."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from openai import AsyncOpenAI, DefaultAioHttpClient
from pydantic import TypeAdapter

from parley_ai import settings_api, tables
from parley_ai.core import Behaviour, NumberConfig, Persona
from parley_ai.llm import OfflineResponder, OpenAIResponder, Responder
from parley_ai.service import AiProjection, RepliesInbox
from parley_ai.settings import AiSettings
from parley_ai.settings_api import Wiring
from parley_shared import topics
from parley_shared.runtime import HTTP_TELEMETRY, ProjectionRuntime, allow_browsers, health_routes
from parley_shared.tenancy import Tenancy, secret

CONSUMED = [
    topics.MESSAGE_RECEIVED,
    topics.REPLY_GENERATED,
    topics.CONVERSATION_CHANGED,
    topics.SETTINGS_CHANGED,
    topics.TENANTS_CHANGED,
    topics.PARTICIPANTS_CHANGED,
]


def load_numbers(settings: AiSettings) -> dict[str, NumberConfig]:
    if settings.ai_number_config is None:
        return {}
    raw = json.loads(settings.ai_number_config.read_text())
    return TypeAdapter(dict[str, NumberConfig]).validate_python(raw)


def defaults_of(settings: AiSettings) -> Behaviour:
    """What the environment says: the defaults under the file's and the operators' settings."""
    return Behaviour(
        Persona(
            settings.ai_system_prompt,
            settings.openai_model,
            settings.ai_max_tokens,
            settings.ai_temperature,
        ),
        settings.ai_fallback_reply,
        settings.ai_history_turns,
    )


def build_responder(settings: AiSettings) -> Responder:
    if settings.ai_offline or settings.openai_api_key is None:
        return OfflineResponder()
    return OpenAIResponder(
        AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url or None,
            timeout=settings.ai_timeout_s,
            max_retries=settings.ai_max_retries,
            # aiohttp underneath: httpx's own pool costs CPU in proportion to the hundreds of
            # calls in flight.
            http_client=DefaultAioHttpClient(timeout=settings.ai_timeout_s),
        )
    )


def create_app(settings: AiSettings, responder: Responder | None = None) -> FastAPI:
    runtime = ProjectionRuntime(settings, tables.SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await runtime.start(tables.MIGRATIONS, settings.ai_pool_size)
        model = responder or build_responder(settings)
        relay = runtime.outbox()
        replies = RepliesInbox(
            responder=model,
            defaults=defaults_of(settings),
            numbers=load_numbers(settings),
            deadline_s=settings.ai_deadline_s,
            lease_s=settings.ai_deadline_s + settings.inbox_lease_grace_s,
            human=settings.human_words,
            on_reply=relay.notify,
            prices=settings.model_prices,
        )
        worker = runtime.work(replies, settings.ai_max_in_flight)
        runtime.consume(
            CONSUMED,
            AiProjection(
                runtime.pool,
                on_work=worker.wake,
                rate_limit_per_minute=settings.ai_rate_limit_per_minute,
                human=settings.human_words,
            ),
            # A close read in the same poll as a message after it is known when it is claimed.
            first=[topics.CONVERSATION_CHANGED],
            # Replies are history (ai_turns) from the moment their outcome is recorded, and
            # a number's settings are applied by the request that changes them.
            own=[topics.REPLY_GENERATED, topics.SETTINGS_CHANGED],
        )
        try:
            yield {
                "tenancy": Tenancy(runtime.pool, tables.SERVICE, secret(settings.api_token)),
                "settings": Wiring(runtime.pool, replies.defaults, replies.numbers, relay.notify),
            }
        finally:
            await runtime.close()
            await model.close()

    app = FastAPI(
        title="Parley ai",
        summary="One AI reply per inbound message.",
        lifespan=lifespan,
        telemetry=HTTP_TELEMETRY,
    )
    health_routes(app, runtime.ready)
    allow_browsers(app)
    app.include_router(settings_api.router)
    return app
