"""The gateway's HTTP entrypoint: providers' webhooks in, acknowledged Kafka events out.

A webhook is answered 200 only after the broker acknowledged its event, so an acknowledged
webhook is never lost; when the broker cannot acknowledge in time the answer is 503 and
Twilio retries (or calls the fallback URL). The handler waits on nothing but that publish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace

from parley_gateway.core import InvalidWebhook
from parley_gateway.email_provider import EmailProvider
from parley_gateway.openapi import EMAIL_WEBHOOK, TELNYX_WEBHOOK, VOICE_WEBHOOK, WEBHOOK
from parley_gateway.providers import Provider, Refused, Webhook
from parley_gateway.settings import GatewaySettings
from parley_gateway.signature import public_url
from parley_gateway.telnyx_provider import TelnyxProvider
from parley_gateway.twilio_provider import TwilioProvider
from parley_shared import metrics, topics
from parley_shared.bus import BrokerUnavailable, Publisher
from parley_shared.db import Pool, answers, create_pool
from parley_shared.events import (
    CallUpdated,
    EmailReceived,
    MessageReceived,
    Payload,
    StatusUpdated,
)
from parley_shared.kafka import KafkaPublisher, ensure_topics
from parley_shared.keyring import Keyring, SealingPublisher
from parley_shared.runtime import HTTP_TELEMETRY, metrics_route
from parley_shared.tracing import context_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.gateway")

# How to turn a provider on, for the 404 of one that is off.
HOW = {"telnyx": " (set TELNYX_PUBLIC_KEY)", "sendgrid": " (set EMAIL_WEBHOOK_PUBLIC_KEY)"}
# The topic of each event a webhook can stand for.
TOPICS: dict[type[Payload], str] = {
    MessageReceived: topics.MESSAGE_RECEIVED,
    StatusUpdated: topics.STATUS_UPDATED,
    CallUpdated: topics.CALL_UPDATED,
    EmailReceived: topics.EMAIL_RECEIVED,
}


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _continued(request: Request) -> dict[str, Any]:
    """Where a webhook's span belongs. A status callback carries the trace of the send it
    reports on (the sender put it in the callback URL): its span joins that message's trace,
    linked to the HTTP request's. Anything else is a child of the HTTP request's span."""
    traceparent = request.query_params.get("traceparent")
    if traceparent is None:
        return {}
    http = trace.get_current_span().get_span_context()
    return {
        "context": context_of(traceparent),
        "links": [trace.Link(http)] if http.is_valid else [],
    }


class Gateway:
    """What a request needs: settings, the providers' adapters and the publisher."""

    def __init__(
        self, settings: GatewaySettings, publisher: Publisher, providers: Sequence[Provider]
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.providers = {provider.name: provider for provider in providers}

    async def read_webhook(self, request: Request, provider: Provider) -> Webhook:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != provider.content_type:
            raise Rejected(
                415, f"content type must be {provider.content_type}, got {content_type or 'none'}"
            )
        limit = provider.max_body_bytes or self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Rejected(413, f"body larger than {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Rejected(413, f"body larger than {limit} bytes")
        return Webhook(
            url=public_url(str(self.settings.public_base_url), request.url.path, request.url.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=bytes(body),
            received_at=datetime.now(UTC),
        )

    async def accept(self, request: Request, provider_name: str, kind: str) -> Response:
        began = time.perf_counter()
        provider = self.providers.get(provider_name)
        if provider is None:
            detail = f"{provider_name} is not configured on this gateway"
            response: Response = JSONResponse(
                {"detail": detail + HOW.get(provider_name, "")},
                status_code=404,
            )
        else:
            response = await self._accept(request, provider, kind)
        endpoint = kind if provider_name == "twilio" else f"{provider_name} {kind}"
        metrics.count(
            "parley_webhook_requests",
            1,
            "Webhooks answered, by endpoint and HTTP status",
            endpoint=endpoint,
            status=str(response.status_code),
        )
        metrics.observe(
            "parley_webhook_duration",
            time.perf_counter() - began,
            "From a webhook's arrival to its answer (the event is on the log by then)",
            endpoint=endpoint,
        )
        return response

    async def _accept(self, request: Request, provider: Provider, kind: str) -> Response:
        with tracer.start_as_current_span(
            f"webhook {provider.name} {kind}",
            attributes={"parley.provider": provider.name},
            **_continued(request),
        ) as span:
            try:
                webhook = await self.read_webhook(request, provider)
                try:
                    event = provider.event_of(kind, webhook)
                except InvalidWebhook as exc:
                    raise Rejected(400, str(exc)) from exc
                except Refused as exc:
                    log.warning("signature check failed for %s: %s", webhook.url, exc)
                    metrics.count(
                        "parley_webhook_signature_failures",
                        1,
                        "Webhooks refused for a missing or wrong signature",
                    )
                    raise Rejected(403, str(exc)) from exc
                if event is not None:
                    topic = TOPICS[type(event.payload)]
                    # Named after what it carries, whichever provider posted it.
                    span.update_name(f"webhook {topic}")
                    await self.publisher.publish(topic, event)
            except Rejected as exc:
                return JSONResponse({"detail": exc.message}, status_code=exc.status)
            except BrokerUnavailable as exc:
                log.warning("answering 503, event not acknowledged: %s", exc)
                return JSONResponse(
                    {"detail": "message broker unavailable, retry later"},
                    status_code=503,
                    headers={"Retry-After": "5"},
                )
        if event is not None and isinstance(event.payload, StatusUpdated):
            # The delivery funnel as providers report it (a bounded set of statuses).
            metrics.count(
                "parley_delivery_statuses",
                1,
                "Status callbacks by status",
                status=event.payload.status,
                channel=event.payload.channel,
            )
        body, media_type = provider.answer
        return Response(body, media_type=media_type)


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


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
