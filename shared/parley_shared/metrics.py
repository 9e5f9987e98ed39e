"""Metrics: OpenTelemetry instruments, read by Prometheus at ``GET /metrics``.

Code records through the OpenTelemetry metrics API (``count``, ``observe``, ``gauge``); each
service process installs one meter provider whose reader is the Prometheus exporter
(``setup_metrics``). Exported names follow Prometheus conventions: a counter ``parley_x`` is
``parley_x_total``, a duration ``parley_y`` (in seconds) is ``parley_y_seconds`` with
``_bucket``, ``_sum`` and ``_count``. Labels are few and bounded (topic, group, endpoint,
outcome, status, model, error code), never a phone number or a conversation.

Until a provider is installed (a library use, a unit test) instruments are no-ops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation

Labels = tuple[tuple[str, str], ...]

# Seconds: from a webhook's few milliseconds to a slow model's half minute.
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_lock = threading.Lock()
_counters: dict[str, Counter] = {}
_histograms: dict[str, Histogram] = {}
_gauges: dict[str, dict[Labels, Callable[[], float]]] = {}
_installed = False


def setup_metrics(service: str) -> None:
    """Install this process's meter provider, read by the Prometheus exporter (once)."""
    global _installed
    with _lock:
        if _installed:
            return
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        provider = MeterProvider(
            resource=Resource.create({"service.name": service}),
            metric_readers=[PrometheusMetricReader()],
        )
        metrics.set_meter_provider(provider)
        _installed = True


def _meter() -> metrics.Meter:
    return metrics.get_meter("parley")


def count(name: str, value: float = 1.0, description: str = "", **labels: str) -> None:
    counter = _counters.get(name)
    if counter is None:
        with _lock:
            counter = _counters.get(name) or _meter().create_counter(name, description=description)
            _counters[name] = counter
    counter.add(value, labels)


def observe(name: str, seconds: float, description: str = "", **labels: str) -> None:
    """A duration, in seconds, into the histogram ``name`` (exported as ``name_seconds``)."""
    histogram = _histograms.get(name)
    if histogram is None:
        with _lock:
            histogram = _histograms.get(name) or _meter().create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=list(SECONDS),
            )
            _histograms[name] = histogram
    histogram.record(seconds, labels)


def gauge(name: str, read: Callable[[], float], description: str = "", **labels: str) -> None:
    """A value read when scraped; registering the same labels again replaces the reader."""
    with _lock:
        readers = _gauges.get(name)
        if readers is None:
            readers = _gauges[name] = {}

            def observe_all(_: CallbackOptions) -> Iterable[Observation]:
                return [Observation(r(), dict(key)) for key, r in list(readers.items())]

            _meter().create_observable_gauge(name, [observe_all], description=description)
        readers[tuple(sorted(labels.items()))] = read


def render() -> bytes:
    """Every metric of this process in the Prometheus text format."""
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY)


def parse(text: str) -> dict[str, float]:
    """Series (name with labels) -> value, from the text format; for the benchmark."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values
