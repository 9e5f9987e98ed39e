"""The Kubernetes manifests: generated files current, and what the offline validator cannot
check (Strimzi's and KEDA's kinds have no schema there) checked here."""

from __future__ import annotations

from typing import Any

import yaml

from parley_dev.manifests import K8S, SERVICES, rendered
from parley_shared import topics


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_committed_manifests_are_what_the_generator_writes() -> None:
    for path, text in rendered().items():
        assert path.read_text() == text, f"{path}: run python -m parley_dev.manifests"


def test_every_service_has_probes_a_budget_and_no_root() -> None:
    base = documents("base/parley.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in base}
    for service in SERVICES:
        assert {("Service", service.name), ("PodDisruptionBudget", service.name)} <= kinds
        deployment = next(
            d for d in base if d["kind"] == "Deployment" and d["metadata"]["name"] == service.name
        )
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["ports"] == [{"containerPort": service.port, "name": "http"}]
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert ("HorizontalPodAutoscaler", "gateway") in kinds
    job = next(d for d in base if d["kind"] == "Job")
    migrated = {c["command"][2] for c in job["spec"]["template"]["spec"]["containers"]}
    assert migrated == {f"parley_{s.name}" for s in SERVICES if s.tables}


def test_production_topics_are_replicated_and_every_topic_has_one() -> None:
    found = {d["spec"]["topicName"]: d for d in documents("overlays/production/topics.yaml")}
    assert set(found) == set(topics.ALL) | {t + topics.DEAD_LETTER_SUFFIX for t in topics.ALL}
    for topic in found.values():
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "parley"


def test_keda_scales_the_inbox_workers_on_their_consumer_lag() -> None:
    scaled = {d["metadata"]["name"]: d for d in documents("overlays/production/autoscaling.yaml")}
    assert set(scaled) == {"ai", "sender"}
    for name, scaler in scaled.items():
        assert scaler["spec"]["scaleTargetRef"]["name"] == name
        lag = [t for t in scaler["spec"]["triggers"] if t["type"] == "kafka"]
        assert lag and all(t["metadata"]["consumerGroup"] == f"parley-{name}" for t in lag)
        assert all(t["metadata"]["topic"] in topics.ALL for t in lag)
