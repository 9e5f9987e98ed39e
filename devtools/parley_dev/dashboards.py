"""Grafana dashboards and Prometheus alert rules for Parley, written from one description.

``python -m parley_dev.dashboards`` rewrites ``deploy/grafana/dashboards/*.json`` and
``deploy/prometheus/alerts.yml``; a test checks they are current and that every query names a
metric the services export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parley_dev.generated import ROOT, write

DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[5m])))"


# Dashboard -> panels: (title, unit, [(query, legend)]).
Panel = tuple[str, str, list[tuple[str, str]]]
BOARDS: dict[str, tuple[str, list[Panel]]] = {
    "overview": (
        "Parley: overview",
        [
            (
                "Webhooks by status",
                "reqps",
                [
                    (
                        "sum by (endpoint, status) (rate(parley_webhook_requests_total[5m]))",
                        "{{endpoint}} {{status}}",
                    )
                ],
            ),
            (
                "Replies by source",
                "ops",
                [("sum by (source) (rate(parley_replies_total[5m]))", "{{source}}")],
            ),
            (
                "Sends by outcome",
                "ops",
                [("sum by (outcome) (rate(parley_sends_total[5m]))", "{{outcome}}")],
            ),
            (
                "Oldest unanswered message",
                "s",
                [("max by (inbox) (parley_inbox_oldest_age_seconds)", "{{inbox}}")],
            ),
            (
                "Dead letters (1 h)",
                "short",
                [("sum by (topic) (increase(parley_dead_letters_total[1h]))", "{{topic}}")],
            ),
        ],
    ),
    "pipeline": (
        "Parley: pipeline latency per hop",
        [
            (
                "Webhook answered (p50, p95)",
                "s",
                [
                    (
                        quantile(0.5, "parley_webhook_duration_seconds", "endpoint"),
                        "p50 {{endpoint}}",
                    ),
                    (
                        quantile(0.95, "parley_webhook_duration_seconds", "endpoint"),
                        "p95 {{endpoint}}",
                    ),
                ],
            ),
            (
                "Publish to Kafka (p95)",
                "s",
                [(quantile(0.95, "parley_kafka_publish_duration_seconds", "topic"), "{{topic}}")],
            ),
            (
                "Model call (p50, p95)",
                "s",
                [
                    (quantile(0.5, "parley_model_duration_seconds", "model"), "p50 {{model}}"),
                    (quantile(0.95, "parley_model_duration_seconds", "model"), "p95 {{model}}"),
                ],
            ),
            (
                "Work waiting and in flight",
                "short",
                [
                    ("sum by (inbox) (parley_inbox_depth)", "waiting {{inbox}}"),
                    ("sum by (inbox) (parley_inbox_in_flight)", "in flight {{inbox}}"),
                ],
            ),
            (
                "Outcomes recorded per write (group commit)",
                "short",
                [
                    (
                        "sum by (inbox) (rate(parley_inbox_records_total[5m])) / "
                        "sum by (inbox) (rate(parley_inbox_record_writes_total[5m]))",
                        "{{inbox}}",
                    ),
                    ("sum by (inbox) (rate(parley_inbox_claims_total[5m]))", "claims/s {{inbox}}"),
                ],
            ),
        ],
    ),
    "ai": (
        "Parley: AI",
        [
            (
                "Model latency (p95)",
                "s",
                [(quantile(0.95, "parley_model_duration_seconds", "model"), "{{model}}")],
            ),
            (
                "Tokens",
                "short",
                [
                    (
                        "sum by (model, kind) (rate(parley_model_tokens_total[5m]))",
                        "{{model}} {{kind}}",
                    )
                ],
            ),
            (
                "Cost (US dollars per hour, MODEL_PRICES)",
                "currencyUSD",
                [("sum by (model) (rate(parley_model_cost_usd_total[5m])) * 3600", "{{model}}")],
            ),
            (
                "Model failures by kind",
                "ops",
                [("sum by (kind) (rate(parley_model_failures_total[5m]))", "{{kind}}")],
            ),
            (
                "Share of fallback replies",
                "percentunit",
                [
                    (
                        'sum(rate(parley_replies_total{source="fallback"}[5m])) / '
                        "sum(rate(parley_replies_total[5m]))",
                        "fallback",
                    )
                ],
            ),
        ],
    ),
    "delivery": (
        "Parley: delivery",
        [
            (
                "Status callbacks (the delivery funnel)",
                "ops",
                [
                    (
                        "sum by (status) (rate(parley_delivery_statuses_total[5m]))",
                        "{{status}}",
                    )
                ],
            ),
            (
                "Refused sends by Twilio error code",
                "ops",
                [
                    (
                        'sum by (error_code) (rate(parley_sends_total{outcome="failed"}[5m]))',
                        "{{error_code}}",
                    )
                ],
            ),
            (
                "Delivered / sent",
                "percentunit",
                [
                    (
                        'sum(rate(parley_delivery_statuses_total{status="delivered"}[1h])) / '
                        'sum(rate(parley_delivery_statuses_total{status="sent"}[1h]))',
                        "delivered",
                    )
                ],
            ),
        ],
    ),
    "kafka": (
        "Parley: Kafka",
        [
            (
                "Consumer lag by group",
                "short",
                [("sum by (group) (parley_consumer_lag)", "{{group}}")],
            ),
            (
                "Consumer lag by partition",
                "short",
                [
                    (
                        "max by (group, topic, partition) (parley_consumer_lag)",
                        "{{group}} {{topic}}/{{partition}}",
                    )
                ],
            ),
            (
                "Consumers held for a newer release",
                "short",
                [("max by (group) (parley_consumer_held)", "{{group}}")],
            ),
            (
                "Publish latency (p95)",
                "s",
                [(quantile(0.95, "parley_kafka_publish_duration_seconds", "topic"), "{{topic}}")],
            ),
            (
                "Rebuilds: events still to apply, and applied per second",
                "short",
                [
                    ("max by (service) (parley_rebuild_remaining_events)", "to go {{service}}"),
                    ("sum by (service) (rate(parley_rebuild_events_total[1m]))", "/s {{service}}"),
                ],
            ),
        ],
    ),
    "postgres": (
        "Parley: Postgres",
        [
            (
                "Pooled connections in use",
                "short",
                [("max by (service) (parley_db_pool_in_use)", "{{service}}")],
            ),
            (
                "Pool acquisitions",
                "ops",
                [
                    (
                        "sum by (service) (rate(parley_db_pool_acquisitions_total[5m]))",
                        "{{service}}",
                    )
                ],
            ),
        ],
    ),
}

# (name, expression, for, severity, summary)
RULES: list[tuple[str, str, str, str, str]] = [
    (
        "ParleyUnansweredMessages",
        "max by (inbox) (parley_inbox_oldest_age_seconds) > 120",
        "2m",
        "page",
        "A message has waited more than 2 minutes for its {{ $labels.inbox }} step",
    ),
    (
        "ParleyConsumerLag",
        "sum by (group) (parley_consumer_lag) > 1000",
        "5m",
        "page",
        "Consumer group {{ $labels.group }} is more than 1,000 events behind",
    ),
    (
        "ParleyConsumerHeld",
        "max by (group) (parley_consumer_held) > 0",
        "10m",
        "ticket",
        "{{ $labels.group }} holds for a newer release: finish the rollout",
    ),
    (
        "ParleyDeadLetters",
        "sum by (topic) (increase(parley_dead_letters_total[10m])) > 0",
        "0m",
        "ticket",
        "Records of {{ $labels.topic }} were dead-lettered: ./dev dlq shows why",
    ),
    (
        "ParleyModelFailures",
        "sum(rate(parley_model_failures_total[5m])) / sum(rate(parley_replies_total[5m])) > 0.1",
        "5m",
        "page",
        "More than 10% of model calls fail (participants get the fallback reply)",
    ),
    (
        "ParleyTwilioErrors",
        'sum(rate(parley_sends_total{outcome=~"failed|retry"}[5m])) / '
        "sum(rate(parley_sends_total[5m])) > 0.05",
        "10m",
        "page",
        "More than 5% of sends fail or are retried",
    ),
    (
        "ParleyWebhookErrors",
        'sum(rate(parley_webhook_requests_total{status=~"5.."}[5m])) > 0',
        "5m",
        "page",
        "Webhooks answered with 5xx: Twilio retries them, then gives up",
    ),
]


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": f"parley-{uid}",
        "title": title,
        "tags": ["parley"],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
            ]
        },
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": name,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
                    for j, (expr, legend) in enumerate(queries)
                ],
            }
            for i, (name, unit, queries) in enumerate(panels)
        ],
    }


def alert_rules() -> str:
    lines = ["# Written by python -m parley_dev.dashboards; edit it there.", "groups:"]
    lines += ["  - name: parley", "    rules:"]
    for name, expr, wait, severity, summary in RULES:
        lines += [
            f"      - alert: {name}",
            f"        expr: {json.dumps(expr)}",
            f"        for: {wait}",
            "        labels:",
            f"          severity: {severity}",
            "        annotations:",
            f"          summary: {json.dumps(summary)}",
        ]
    return "\n".join(lines) + "\n"


def rendered() -> dict[Path, str]:
    files = {
        DASHBOARDS / f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
        for uid, (title, panels) in BOARDS.items()
    }
    files[ALERTS] = alert_rules()
    return files


def main() -> None:
    write(rendered())


if __name__ == "__main__":
    main()
