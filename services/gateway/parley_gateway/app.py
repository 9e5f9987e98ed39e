"""The gateway's HTTP entrypoint: providers' webhooks in, acknowledged Kafka events out
(``webhooks.py``), and the wiring of Kafka, the keyring and the providers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from parley_gateway.email_provider import EmailProvider
from parley_gateway.openapi import EMAIL_WEBHOOK, TELNYX_WEBHOOK, VOICE_WEBHOOK, WEBHOOK
from parley_gateway.providers import Provider
from parley_gateway.settings import GatewaySettings
from parley_gateway.telnyx_provider import TelnyxProvider
from parley_gateway.twilio_provider import TwilioProvider
from parley_gateway.webhooks import Gateway, GatewayDep
from parley_shared.bus import Publisher
from parley_shared.db import Pool, answers, create_pool
from parley_shared.kafka import KafkaPublisher, ensure_topics
from parley_shared.keyring import Keyring, SealingPublisher
from parley_shared.runtime import HTTP_TELEMETRY, metrics_route

log = logging.getLogger(__name__)


async def _when_possible(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` until it succeeds: the gateway answers 503 meanwhile, not fails to start."""
    delay = 0.5
    while True:
        try:
            await step()
            return
        except Exception as exc:
            log.warning("cannot %s yet (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def providers_of(settings: GatewaySettings) -> list[Provider]:
    """The providers whose webhooks this gateway accepts: Twilio, and Telnyx when its
    public key is set."""
    providers: list[Provider] = [
        TwilioProvider(settings.twilio_auth_token.get_secret_value(), settings.human_words)
    ]
    if settings.telnyx_public_key is not None:
        providers.append(TelnyxProvider(settings.telnyx_public_key, settings.human_words))
    if settings.email_webhook_public_key is not None:
        providers.append(EmailProvider(settings.email_webhook_public_key, settings.max_email_bytes))
    return providers


def create_app(settings: GatewaySettings, publisher: Publisher | None = None) -> FastAPI:
    """The app; ``publisher`` replaces Kafka in unit tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        kafka: KafkaPublisher | None = None
        pool: Pool | None = None
        tasks: list[asyncio.Task[None]] = []
        sink = publisher
        if settings.public_base_url.host in ("localhost", "127.0.0.1", "::1", "[::1]"):
            log.warning(
                "PUBLIC_BASE_URL is %s: Twilio signs the public URL it calls, so webhooks "
                "from Twilio will fail the signature check (403) unless it is that URL",
                settings.public_base_url,
            )
        if sink is None:
            if settings.database_url is None:
                raise RuntimeError(
                    "DATABASE_URL is not set: the gateway seals participants' data with their "
                    "keys (kept in Postgres) before it publishes"
                )
            pool = await create_pool(settings.database_url, max_size=4, name="gateway", min_size=0)
            keyring = Keyring(
                pool, schema=settings.keyring_schema, cache_s=settings.keyring_cache_s
            )
            kafka = KafkaPublisher(settings, timeout_s=settings.publish_timeout_s)
            await kafka.start()
            sink = SealingPublisher(kafka, keyring)
            tasks = [
                asyncio.create_task(
                    _when_possible("create topics", lambda: ensure_topics(settings))
                ),
                asyncio.create_task(_when_possible("listen to the keyring", keyring.listen)),
            ]
            try:
                # Before the first webhook when the database is up; in the background if not.
                await asyncio.wait_for(keyring.ensure(), settings.publish_timeout_s)
            except Exception as exc:
                log.warning("cannot create the keyring yet (%r); retrying in the background", exc)
                tasks.append(
                    asyncio.create_task(_when_possible("create the keyring", keyring.ensure))
                )
        gateway = Gateway(settings, sink, providers_of(settings))
        try:
            yield {"gateway": gateway, "kafka": kafka, "pool": pool}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if kafka is not None:
                await kafka.stop()
            if pool is not None:
                await pool.close()

    app = FastAPI(
        title="Parley gateway",
        summary="Receives Twilio, Telnyx and inbound-email webhooks and publishes them to Kafka.",
        lifespan=lifespan,
        telemetry=HTTP_TELEMETRY,
    )

    @app.post("/webhooks/twilio/messages", **WEBHOOK)
    async def inbound_message(request: Request, gateway: GatewayDep) -> Response:
        """An inbound SMS or WhatsApp message."""
        return await gateway.accept(request, "twilio", "messages")

    @app.post("/webhooks/twilio/status", **WEBHOOK)
    async def status_callback(request: Request, gateway: GatewayDep) -> Response:
        """A delivery status callback for a message Parley sent."""
        return await gateway.accept(request, "twilio", "status")

    @app.post("/webhooks/twilio/voice", **VOICE_WEBHOOK)
    async def call_status(request: Request, gateway: GatewayDep) -> Response:
        """A voice call's status callback (point a number's or a call's StatusCallback here):
        the call shows in the caller's thread and is counted in analytics."""
        return await gateway.accept(request, "twilio", "voice")

    @app.post("/webhooks/email/inbound", **EMAIL_WEBHOOK)
    async def inbound_email(request: Request, gateway: GatewayDep) -> Response:
        """An email to one of our addresses, posted Inbound Parse style and signed.
        404 unless ``EMAIL_WEBHOOK_PUBLIC_KEY`` is set."""
        return await gateway.accept(request, "sendgrid", "inbound")

    @app.post("/webhooks/telnyx/messages", **TELNYX_WEBHOOK)
    async def telnyx_message(request: Request, gateway: GatewayDep) -> Response:
        """A Telnyx messaging event: an inbound message, or a sent message's status
        (``message.sent``, ``message.finalized``). 404 unless ``TELNYX_PUBLIC_KEY`` is set."""
        return await gateway.accept(request, "telnyx", "messages")

    metrics_route(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={503: {"description": "The broker or the keyring's database does not answer"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        kafka: KafkaPublisher | None = request.state.kafka
        pool: Pool | None = request.state.pool
        if kafka is not None and not await kafka.ping():
            return JSONResponse({"status": "broker unreachable"}, status_code=503)
        if pool is not None and not await answers(pool):
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
