"""The participants sketch: close to exact for small counts, within a few percent for large
ones, and the same whatever order participants are added or sketches merged in."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from parley_analytics import sketch


def numbers(n: int, offset: int = 0) -> list[str]:
    return [f"+1555{offset + i:07d}" for i in range(n)]


def test_small_counts_are_all_but_exact_and_large_ones_close() -> None:
    assert sketch.estimate(sketch.EMPTY) == 0
    for n in (1, 2, 5, 10, 30):
        assert sketch.estimate(sketch.add(sketch.EMPTY, numbers(n))) == n
    for n in (1_000, 20_000, 200_000):
        found = sketch.estimate(sketch.add(sketch.EMPTY, numbers(n)))
        assert abs(found - n) / n < 0.06, (n, found)


def test_a_participant_counts_once() -> None:
    once = sketch.add(sketch.EMPTY, numbers(50))
    assert sketch.add(once, numbers(50)) == once
    assert sketch.merge([once, once]) == once


@given(st.lists(st.integers(0, 5_000), max_size=300), st.randoms(use_true_random=False))
def test_order_does_not_matter(ids: list[int], rng: random.Random) -> None:
    people = [f"+1555{i:07d}" for i in ids]
    shuffled = people[:]
    rng.shuffle(shuffled)
    cut = rng.randint(0, len(shuffled))
    in_two = sketch.merge(
        [sketch.add(sketch.EMPTY, shuffled[:cut]), sketch.add(sketch.EMPTY, shuffled[cut:])]
    )
    assert in_two == sketch.add(sketch.EMPTY, people)


def test_union_of_overlapping_sets() -> None:
    a = sketch.add(sketch.EMPTY, numbers(3_000))
    b = sketch.add(sketch.EMPTY, numbers(3_000, offset=2_000))
    union = sketch.estimate(sketch.merge([a, b]))
    assert abs(union - 5_000) / 5_000 < 0.05


def reference_estimate(registers: bytes) -> int:
    """The textbook estimate, with no shortcut."""
    empty = registers.count(0)
    raw = sketch._ALPHA * sketch.M**2 / sum(2.0**-r for r in registers)
    if raw <= 2.5 * sketch.M and empty:
        return round(sketch.M * math.log(sketch.M / empty))
    return round(raw)


@given(st.integers(1, sketch.M), st.integers(0, 2**32), st.integers(1, 30))
def test_the_estimate_is_the_textbook_one(filled: int, seed: int, top: int) -> None:
    rng = random.Random(seed)
    registers = bytearray(sketch.M)
    for index in rng.sample(range(sketch.M), filled):
        registers[index] = rng.randint(1, top)
    assert sketch.estimate(bytes(registers)) == reference_estimate(bytes(registers))
