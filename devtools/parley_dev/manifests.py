"""Parley's Kubernetes manifests, written from one description of its services.

``python -m parley_dev.manifests`` rewrites the generated files under ``deploy/k8s``: every
service's Service, Deployment and PodDisruptionBudget, the gateway's HorizontalPodAutoscaler,
the NetworkPolicies and the migration Job (``base/parley.yaml``), and for the production
overlay the Strimzi topics and the KEDA autoscalers. The kustomizations beside them are
written by hand; a test checks the generated files are current, and ``scripts/check`` builds
and validates every overlay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parley_dev.generated import ROOT, write
from parley_shared import topics

K8S = ROOT / "deploy" / "k8s"
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    cpu: str  # request
    memory: str  # request; the limit is twice it
    tables: bool = True  # owns Postgres tables: migrated by the Job
    # Inbox workers (ai, sender) scale on their backlog, with KEDA in production.
    inbox_topics: tuple[str, ...] = ()


SERVICES = (
    Service("gateway", 8080, "250m", "128Mi", tables=False),
    Service("conversation", 8081, "250m", "256Mi"),
    Service("ai", 8082, "250m", "256Mi", inbox_topics=(topics.MESSAGE_RECEIVED,)),
    Service(
        "sender",
        8083,
        "250m",
        "256Mi",
        inbox_topics=(topics.REPLY_GENERATED, topics.MESSAGE_REQUESTED),
    ),
    Service("analytics", 8084, "250m", "512Mi"),
)
PARTITIONS = 12
# What a Parley pod is, for the NetworkPolicies of Kafka and Postgres.
COMPONENT = "app.kubernetes.io/component"
SECURE_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SECURE_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
ENV_FROM = [{"configMapRef": {"name": "parley-config"}}, {"secretRef": {"name": "parley-secrets"}}]


def _meta(name: str, **labels: str) -> Manifest:
    return {"name": name, "labels": {"app.kubernetes.io/name": name, **labels}}


def _probe(path: str, period: int, failures: int = 3) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def deployment(service: Service) -> list[Manifest]:
    selector = {"app.kubernetes.io/name": service.name}
    container = {
        "name": service.name,
        "image": "parley",
        "command": ["python", "-m", f"parley_{service.name}"],
        "ports": [{"containerPort": service.port, "name": "http"}],
        "envFrom": ENV_FROM,
        # Migrations, topics and a first broker connection can take a while; after that a
        # hung process is restarted, and one that cannot reach Kafka or Postgres gets no
        # traffic (/readyz) without being restarted for it.
        "startupProbe": _probe("/healthz", 2, failures=60),
        "livenessProbe": _probe("/healthz", 10),
        "readinessProbe": _probe("/readyz", 5),
        "resources": {
            "requests": {"cpu": service.cpu, "memory": service.memory},
            "limits": {"memory": _double(service.memory)},
        },
        "securityContext": SECURE_CONTAINER,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(service.name),
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(service.name, **{COMPONENT: "service"}),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": {**selector, COMPONENT: "service"},
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(service.port),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": {
                        "securityContext": SECURE_POD,
                        # Servers drain in 5 s; consumers leave their group on SIGTERM.
                        "terminationGracePeriodSeconds": 30,
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": selector},
                            }
                        ],
                        "containers": [container],
                    },
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(service.name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def _double(quantity: str) -> str:
    return f"{int(quantity.removesuffix('Mi')) * 2}Mi"


def gateway_autoscaler() -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta("gateway"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def network_policies() -> list[Manifest]:
    names = [s.name for s in SERVICES]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny-ingress"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            # The gateway (Twilio, through the ingress) and the APIs (operators, the console,
            # Prometheus) answer on their http port; nothing else in the namespace is open.
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "parley-http"},
            "spec": {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "app.kubernetes.io/name", "operator": "In", "values": names}
                    ]
                },
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": "http", "protocol": "TCP"}]}],
            },
        },
    ]


def from_parley(name: str, port: int) -> Manifest:
    """Kafka or Postgres reachable only from Parley's services and its migration Job."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-from-parley"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {
                                        "key": COMPONENT,
                                        "operator": "In",
                                        "values": ["service", "migration"],
                                    }
                                ]
                            }
                        }
                    ],
                    "ports": [{"port": port, "protocol": "TCP"}],
                }
            ],
        },
    }


def migration_job() -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "parley-migrate", "labels": {COMPONENT: "migration"}},
        "spec": {
            "backoffLimit": 3,
            # A Job's pod template cannot change: the finished Job goes away before the next
            # release applies its own.
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {"labels": {COMPONENT: "migration"}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": SECURE_POD,
                    "containers": [
                        {
                            "name": s.name,
                            "image": "parley",
                            "command": ["python", "-m", f"parley_{s.name}", "migrate"],
                            "envFrom": ENV_FROM,
                            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                            "securityContext": SECURE_CONTAINER,
                        }
                        for s in SERVICES
                        if s.tables
                    ],
                },
            },
        },
    }


def kafka_topics() -> list[Manifest]:
    """Strimzi topics: three replicas, two in sync before a write is acknowledged, kept for
    ever (the log is the source of truth: every table is rebuilt from it)."""
    names = [*topics.ALL, *(t + topics.DEAD_LETTER_SUFFIX for t in topics.ALL)]
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {
                "name": name.replace(".", "-"),
                # Strimzi's topic operator watches the Kafka cluster's namespace.
                "namespace": "kafka",
                "labels": {"strimzi.io/cluster": "parley"},
            },
            "spec": {
                "topicName": name,
                "partitions": PARTITIONS,
                "replicas": 3,
                "config": {"min.insync.replicas": 2, "retention.ms": -1},
            },
        }
        for name in names
    ]


def scaled_objects() -> list[Manifest]:
    """KEDA for the inbox workers: on their consumer lag (events not yet in the inbox) and on
    the inbox itself (leased or waiting work: the model or Twilio is the slow part, and that
    backlog is in Postgres, not in Kafka), up to one replica per partition."""
    found = []
    for service in SERVICES:
        if not service.inbox_topics:
            continue
        lag = [
            {
                "type": "kafka",
                "metadata": {
                    "bootstrapServers": "parley-kafka-bootstrap.kafka:9092",
                    "consumerGroup": f"parley-{service.name}",
                    "topic": topic,
                    "lagThreshold": "100",
                },
            }
            for topic in service.inbox_topics
        ]
        backlog = {
            "type": "prometheus",
            "metadata": {
                "serverAddress": "http://prometheus.monitoring:9090",
                "query": f'sum(parley_inbox_depth{{inbox="{service.name}"}})',
                "threshold": "200",
            },
        }
        found.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {**_meta(service.name), "namespace": "parley"},
                "spec": {
                    "scaleTargetRef": {"name": service.name},
                    "minReplicaCount": 2,
                    "maxReplicaCount": PARTITIONS,
                    "triggers": [*lag, backlog],
                },
            }
        )
    return found


HEADER = "# Written by `python -m parley_dev.manifests` from one description; do not edit.\n"


def _documents(manifests: list[Manifest]) -> str:
    return HEADER + "".join(
        "---\n" + yaml.safe_dump(m, sort_keys=False, width=100) for m in manifests
    )


def rendered() -> dict[Path, str]:
    base = [m for s in SERVICES for m in deployment(s)]
    base += [gateway_autoscaler(), *network_policies(), migration_job()]
    return {
        K8S / "base" / "parley.yaml": _documents(base),
        K8S / "overlays" / "local" / "network.yaml": _documents(
            [from_parley("kafka", 9092), from_parley("postgres", 5432)]
        ),
        K8S / "overlays" / "production" / "topics.yaml": _documents(kafka_topics()),
        K8S / "overlays" / "production" / "autoscaling.yaml": _documents(scaled_objects()),
    }


def main() -> None:
    write(rendered())


if __name__ == "__main__":
    main()
