"""One trace per message, across real processes: the Twilio webhook, the gateway's publish, the
ai's inbox and model call, the sender's Twilio send and both delivery callbacks, and every
read model that applied those events, exported over OTLP/HTTP to a small receiver here.

Every Parley service runs as its own process (as ``./dev run`` starts them), so the context
has to cross Kafka headers, the inboxes' and outboxes' tables and the status callback URL; an
in-process test would share one tracer and could not tell.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from parley_dev import fake_openai, sandbox
from parley_dev.run import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
from parley_dev.serve import serving
from parley_dev.stack import running, sandboxed
from tests.e2e.conftest import eventually
from tests.helpers import inbound_params, signed

PUBLIC = "https://parley.traces.test"


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[str, ...]  # span ids


def receiver(spans: list[Span]) -> FastAPI:
    """An OTLP/HTTP trace receiver, as a Collector's: protobuf in, spans kept."""
    app = FastAPI()

    @app.post("/v1/traces")
    async def export(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        exported = ExportTraceServiceRequest.FromString(body)
        for resource_spans in exported.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                spans.extend(
                    Span(
                        service=attributes.get("service.name", ""),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        links=tuple(link.span_id.hex() for link in span.links),
                    )
                    for span in scope.spans
                )
        return Response(ExportTraceServiceRequest().SerializeToString())

    return app


@pytest.fixture
async def collected() -> AsyncIterator[tuple[str, list[Span]]]:
    spans: list[Span] = []
    async with serving(receiver(spans)) as url:
        yield url, spans


async def test_one_trace_from_the_webhook_to_the_last_status_callback(
    kafka_bootstrap: str,
    database: str,
    collected: tuple[str, list[Span]],
    tmp_path: Path,
) -> None:
    otlp, spans = collected
    box = sandbox.Sandbox(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, public_base=PUBLIC)
    model = fake_openai.FakeOpenAI()
    async with (
        serving(sandbox.create_app(box)) as twilio,
        serving(fake_openai.create_app(model)) as openai,
    ):
        env = {
            **sandboxed(
                kafka=kafka_bootstrap,
                database=database,
                twilio=twilio,
                openai=openai,
                public=PUBLIC,
                name="traces",
            ),
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        async with running(env, tmp_path / "logs") as stack:
            gateway = stack.urls("gateway")[0]
            box.deliver_to = (PUBLIC, gateway)
            params = inbound_params(AccountSid=SANDBOX_ACCOUNT_SID, Body="is anyone there?")
            url = f"{PUBLIC}/webhooks/twilio/messages"
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    f"{gateway}/webhooks/twilio/messages",
                    data=params,
                    headers=signed(url, params, SANDBOX_AUTH_TOKEN),
                )
            assert answer.status_code == 200

            async def delivered() -> str | None:
                sent = [m for m in box.sent if m.to == params["From"]]
                if sent and box.reported.get(sent[0].sid, []) == ["sent", "delivered"]:
                    return sent[0].sid
                return None

            await eventually(delivered, timeout_s=60)
            trace = await eventually(lambda: whole_trace(spans), timeout_s=30)

    by_name = {(s.service, s.name): s for s in trace}
    assert len({s.trace_id for s in trace}) == 1
    # The chain, hop by hop: each step is a descendant of the one before.
    webhook = by_name["parley-gateway", "webhook message.received"]
    ai_work = by_name["parley-ai", "ai work"]
    complete = by_name["parley-ai", "ai.complete"]
    send = by_name["parley-sender", "twilio.send"]
    assert webhook in ancestors(ai_work, trace)
    assert ai_work in ancestors(complete, trace)
    assert ai_work in ancestors(send, trace)
    model_calls = [s for s in trace if s.service == "parley-ai" and s.name.startswith("POST")]
    assert model_calls and complete in ancestors(model_calls[0], trace)
    callbacks = [s for s in trace if s.name == "webhook status.updated"]
    assert len(callbacks) == 2
    assert all(send in ancestors(c, trace) for c in callbacks)
    # Each callback's own HTTP request (a trace of its own, Twilio sends no context) is linked.
    assert all(len(c.links) == 1 for c in callbacks)
    # The read models applied the inbound, the reply, the send and the statuses in this trace.
    for service in ("parley-conversation", "parley-analytics"):
        assert any(s.service == service and s.name.startswith("consume") for s in trace)
    # Postgres statements are in it too, and it is one tree rooted at the webhook's request.
    assert any(s.name.split(" ")[0] in ("SELECT", "INSERT", "UPDATE", "WITH") for s in trace)
    print(tree(trace))
    ids = {s.span_id for s in trace}
    roots = [s for s in trace if s.parent_id not in ids]
    assert [(r.service, r.parent_id) for r in roots] == [("parley-gateway", "")]
    assert roots[0] in ancestors(webhook, trace)


def tree(trace: list[Span], parent: str = "", depth: int = 0) -> str:
    return "".join(
        f"{'  ' * depth}{s.service}: {s.name}\n" + tree(trace, s.span_id, depth + 1)
        for s in trace
        if s.parent_id == parent
    )


def ancestors(span: Span, trace: list[Span]) -> list[Span]:
    by_id = {s.span_id: s for s in trace}
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def whole_trace(spans: list[Span]) -> list[Span] | None:
    """The inbound message's trace, once every part named above has been exported."""
    roots = [s for s in spans if s.name == "webhook message.received"]
    if not roots:
        return None
    trace = [s for s in spans if s.trace_id == roots[0].trace_id]
    names = {(s.service, s.name) for s in trace}
    wanted = {
        ("parley-ai", "ai work"),
        ("parley-ai", "ai.complete"),
        ("parley-sender", "twilio.send"),
    }
    callbacks = sum(s.name == "webhook status.updated" for s in trace)
    services = {s.service for s in trace if s.name.startswith("consume")}
    ids = {s.span_id for s in trace}
    parentless = sum(s.parent_id not in ids for s in trace)
    if (
        wanted <= names
        and callbacks == 2
        and {"parley-conversation", "parley-analytics"} <= services
        and parentless == 1
    ):
        return trace
    return None
