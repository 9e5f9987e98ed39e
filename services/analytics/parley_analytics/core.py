"""Pure arithmetic of analytics: latency histograms, percentiles, costs."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Latencies are kept as counts per logarithmic bin (each bin 5% wider than the last), so
# percentiles over any range come from a few hundred rows, however many messages there were.
GROWTH = 1.05


def bin_of(ms: float) -> int:
    return int(math.log1p(max(ms, 0.0)) / math.log(GROWTH))


def bin_value(index: int) -> float:
    """A representative value of a bin: its geometric middle."""
    low, high = math.expm1(index * math.log(GROWTH)), math.expm1((index + 1) * math.log(GROWTH))
    return (low + high) / 2


def percentile(bins: Sequence[tuple[int, int]], q: float) -> float | None:
    """The q-quantile (0..1) from (bin, count) pairs sorted by bin."""
    total = sum(count for _, count in bins)
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for index, count in bins:
        seen += count
        if seen > rank:
            return round(bin_value(index), 1)
    return round(bin_value(bins[-1][0]), 1)


def cost_usd(
    prompt_tokens: int, completion_tokens: int, input_per_1m: float, output_per_1m: float
) -> float:
    return (prompt_tokens * input_per_1m + completion_tokens * output_per_1m) / 1_000_000
