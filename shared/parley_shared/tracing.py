"""OpenTelemetry wiring: spans per service, W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

KafkaHeaders = Sequence[tuple[str, bytes]]


def setup_tracing(
    service_name: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install a tracer provider exporting over OTLP/HTTP when an endpoint is configured.

    Without an endpoint (and no explicit exporter) nothing is installed: spans stay no-ops and
    cost nothing, which is what a laptop run wants.
    """
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    if exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers() -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode("ascii")) for key, value in carrier.items()]


def extract_context(headers: KafkaHeaders | None) -> Context:
    carrier = {}
    for key, value in headers or ():
        try:
            carrier[key.lower()] = value.decode("ascii")
        except (UnicodeDecodeError, AttributeError):
            continue
    return propagate.extract(carrier)
