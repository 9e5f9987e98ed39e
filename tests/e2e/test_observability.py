"""Metrics, dashboards and alerts: every query of every Grafana panel and alert rule names a
metric the running services export (scraped after real traffic, failures included), the
committed files are what the generator writes, promtool accepts the rules, and a real
Prometheus scrapes every service with them loaded. Logs are JSON
lines with the trace they were written in and no phone number."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from parley_dev.dashboards import ALERTS, DASHBOARDS, rendered
from parley_dev.infra import free_port
from parley_dev.rebuild import rebuild
from parley_shared import metrics, topics
from parley_shared.kafka import KafkaPublisher
from parley_shared.logs import JsonFormatter
from parley_shared.redact import RedactPhoneNumbers
from parley_shared.topics import Topics
from tests.e2e.conftest import Parley, eventually
from tests.e2e.test_loop import replies_to
from tests.helpers import inbound_params, signed

METRIC = re.compile(r"\b(parley_[a-z0-9_]+)\b")


@pytest.fixture
def measured() -> None:
    """A meter provider for this process, installed before the services start."""
    metrics.setup_metrics("parley-tests")


def exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def queries() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            found[f"{path.name}: {panel['title']}"] = [t["expr"] for t in panel["targets"]]
    found["alerts.yml"] = [line for line in ALERTS.read_text().splitlines() if "expr:" in line]
    return found


def test_committed_dashboards_and_rules_are_what_the_generator_writes() -> None:
    for path, text in rendered().items():
        assert path.read_text() == text, f"{path}: run python -m parley_dev.dashboards"
    assert len(list(DASHBOARDS.glob("*.json"))) == 6


@pytest.mark.skipif(shutil.which("promtool") is None, reason="./dev test installs prometheus")
def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_every_panel_and_alert_queries_an_exported_metric(
    measured: None, parley: Parley
) -> None:
    await parley.text("+15550210001", "hello")
    await replies_to(parley, "+15550210001", 1)
    parley.openai.failures = [(500, None)] * 3  # a failed model call and a fallback reply
    await parley.text("+15550210002", "and you?")
    await replies_to(parley, "+15550210002", 1)
    # A webhook with a wrong signature, and bytes on a topic that are not an event.
    params = inbound_params()
    bad = await parley.http.post(
        parley.gateway + "/webhooks/twilio/messages",
        content="&".join(f"{k}={v}" for k, v in params.items()),
        headers={**signed("https://elsewhere.test/x", params)},
    )
    assert bad.status_code == 403
    publisher = KafkaPublisher(parley.bus)
    try:
        physical = Topics(parley.bus.kafka_topic_prefix).name(topics.MESSAGE_RECEIVED)
        await publisher.publish_raw(physical, key=b"k", value=b"\x00not an event")
    finally:
        await publisher.stop()

    # A rebuild beside the live tables, for its progress metrics.
    await rebuild(
        "analytics",
        database_url=parley.database,
        bus=parley.bus,
        schema="analytics_observed",
        group_id=f"parley-analytics-observed-{uuid.uuid4().hex[:6]}",
        out=None,
    )

    wanted = {where: set(METRIC.findall(" ".join(exprs))) for where, exprs in queries().items()}
    needed = set().union(*wanted.values())

    async def scraped() -> set[str]:
        names: set[str] = set()
        assert parley.ai is not None
        # Every service serves its metrics (here they share one process's meter provider).
        for url in (
            parley.gateway,
            *(str(c.base_url) for c in (parley.conversation, parley.ai, parley.analytics)),
            str(parley.sender.base_url),
        ):
            response = await parley.http.get(url.rstrip("/") + "/metrics")
            assert response.status_code == 200, url
            names |= exported(response.text)
        return names

    async def complete() -> set[str] | None:
        # Status callbacks and dead letters come a moment after the replies.
        names = await scraped()
        return names if needed <= names else None

    with contextlib.suppress(AssertionError):
        await eventually(complete, timeout_s=15)
    names = await scraped()
    missing = {where: sorted(used - names) for where, used in wanted.items()}
    assert {where: gone for where, gone in missing.items() if gone} == {}
    # The queries are not trivially empty: every board asks for several metrics.
    assert len({m for exprs in queries().values() for m in METRIC.findall(" ".join(exprs))}) > 15


def test_logs_are_json_with_the_trace_and_no_phone_number() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("tests"))
    handler.addFilter(RedactPhoneNumbers())
    logger = logging.getLogger("parley.tests.logs")
    logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("tests")
    try:
        with tracer.start_as_current_span("webhook") as span:
            logger.warning("no reply for %s", "+15551234567")
        line = json.loads(stream.getvalue())
    finally:
        logger.removeHandler(handler)
    assert line["message"] == "no reply for +•••••••••67"
    assert line["level"] == "warning" and line["service"] == "tests"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "+15551234567" not in stream.getvalue()
    assert trace.get_current_span().get_span_context().is_valid is False


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="./dev test installs prometheus")
async def test_prometheus_scrapes_every_service_and_loads_the_rules(
    measured: None, parley: Parley, tmp_path: Path
) -> None:
    """A real Prometheus (Debian's) with the committed rules scrapes the running services."""
    assert parley.ai is not None
    targets = [
        urlsplit(url).netloc
        for url in (
            parley.gateway,
            *(str(c.base_url) for c in (parley.conversation, parley.ai, parley.analytics)),
            str(parley.sender.base_url),
        )
    ]
    config = tmp_path / "prometheus.yml"
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        f"  - job_name: parley\n    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
    )
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        await parley.text("+15550210003", "scrape me")
        await replies_to(parley, "+15550210003", 1)

        async def query(promql: str) -> list[dict[str, Any]] | None:
            try:
                response = await parley.http.get(f"{api}/query", params={"query": promql})
            except httpx.TransportError:
                return None
            result: list[dict[str, Any]] = response.json()["data"]["result"]
            return result or None

        async def all_up() -> list[dict[str, Any]] | None:
            up = await query('up{job="parley"} == 1')
            return up if up and len(up) == len(targets) else None

        assert len(await eventually(all_up, timeout_s=30)) == len(targets)
        webhooks = await eventually(
            lambda: query('sum(parley_webhook_requests_total{endpoint="messages"})')
        )
        assert float(webhooks[0]["value"][1]) >= 1
        rules = (await parley.http.get(f"{api}/rules")).json()["data"]["groups"][0]["rules"]
        assert {r["name"] for r in rules} >= {"ParleyUnansweredMessages", "ParleyDeadLetters"}
        assert all(r["health"] != "err" for r in rules)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
