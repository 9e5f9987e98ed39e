"""The gateway's webhook intake: a provider's request checked and read into an event, and
the event on the log before the answer.

A webhook is answered 200 only after the broker acknowledged its event, so an acknowledged
webhook is never lost; when the broker cannot acknowledge in time the answer is 503 and the
provider retries (Twilio calls the fallback URL). The handler waits on nothing but that
publish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace

from parley_gateway.core import InvalidWebhook
from parley_gateway.providers import Provider, Refused, Webhook
from parley_gateway.settings import GatewaySettings
from parley_gateway.signature import public_url
from parley_shared import metrics, topics
from parley_shared.bus import BrokerUnavailable, Publisher
from parley_shared.events import (
    CallUpdated,
    EmailReceived,
    MessageReceived,
    Payload,
    StatusUpdated,
)
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
