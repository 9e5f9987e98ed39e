"""OpenTelemetry wiring: one trace per message, from the Twilio webhook to the last status
callback, across Kafka, inboxes and outboxes.

The context travels in two places. Kafka headers carry W3C ``traceparent`` as every Kafka tool
expects. The event itself carries it too (``Envelope.traceparent``, the CloudEvents tracing
extension), because an event also waits in tables between a consumer and the work it causes:
the ai's and the sender's inboxes, every outbox. Whoever creates an event inside a span makes
it that span's child; whoever works on a stored event continues that event's trace.
"""

from __future__ import annotations

import re

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

# version-traceid-spanid-flags, as W3C Trace Context writes it (lower-case hex).
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def setup_tracing(
    service_name: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install a tracer provider exporting over OTLP/HTTP when an endpoint is configured, and
    instrument asyncpg and the HTTP clients (the model's, Twilio's).

    Without an endpoint (and no explicit exporter) nothing is installed or patched: spans stay
    no-ops and cost nothing, which is what a laptop run wants.
    """
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    if exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    return provider


def _instrument_clients() -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    # Query parameters are never captured (asyncpg's default): they hold phone numbers.
    asyncpg = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    for instrumentor in (asyncpg, AioHttpClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    httpx = HTTPXClientInstrumentor()
    if not httpx.is_instrumented_by_opentelemetry:
        httpx.instrument()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the span being recorded now, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context:
    """A context whose parent is ``traceparent``; an empty one (a new trace) for None or for
    anything malformed (it may come from a URL)."""
    if traceparent is None or not TRACEPARENT.match(traceparent):
        return Context()
    return propagate.extract({"traceparent": traceparent}, context=Context())


def with_traceparent(url: str) -> str:
    """``url`` carrying the current trace: Twilio calls a message's status callback URL exactly
    as given (and signs it so), which is how its delivery callbacks join the message's trace."""
    traceparent = current_traceparent()
    if traceparent is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}traceparent={traceparent}"


def headers_for(traceparent: str | None) -> list[tuple[str, bytes]]:
    """Kafka headers for an event: its own trace, else the current one."""
    if traceparent is not None:
        return [("traceparent", traceparent.encode("ascii"))]
    return inject_headers()


def inject_headers() -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode("ascii")) for key, value in carrier.items()]
