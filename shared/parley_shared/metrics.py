"""Process counters in the Prometheus text format, for ``GET /metrics``.

Deliberately tiny: monotonic counters and gauges keyed by name and a few bounded labels. The
load benchmark reads them (pool acquisitions, claims, records per message), and Prometheus can
scrape the same endpoint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


class Registry:
    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauges: dict[str, dict[Labels, Callable[[], float]]] = defaultdict(dict)
        self._help: dict[str, str] = {}

    def inc(self, name: str, by: float = 1.0, help_text: str = "", **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._counters[name]
        series[key] = series.get(key, 0.0) + by
        if help_text:
            self._help.setdefault(name, help_text)

    def gauge(
        self, name: str, read: Callable[[], float], help_text: str = "", **labels: str
    ) -> None:
        self._gauges[name][tuple(sorted(labels.items()))] = read
        if help_text:
            self._help[name] = help_text

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            lines += self._family(name, "counter", sorted(series.items()))
        for name, reads in sorted(self._gauges.items()):
            lines += self._family(name, "gauge", [(k, read()) for k, read in sorted(reads.items())])
        return "\n".join(lines) + "\n"

    def _family(self, name: str, kind: str, series: list[tuple[Labels, float]]) -> list[str]:
        lines = [f"# HELP {name} {self._help.get(name, name)}", f"# TYPE {name} {kind}"]
        for labels, value in series:
            rendered = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return lines


def parse(text: str) -> dict[str, float]:
    """Series (name with labels) -> value, from the text format; for the benchmark."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


REGISTRY = Registry()
