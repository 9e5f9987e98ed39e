"""The fault-injection suite's short profile (``./dev chaos`` runs the full one).

It starts its own broker and PostgreSQL, since it stops and pauses them. Correctness is
asserted: nothing acknowledged goes unanswered, nothing is answered twice, nothing valid is
dead-lettered, every reported status shows. Throughput figures are printed, not asserted
(a timed check on a shared machine would flake); ``./dev chaos`` fails on them.
"""

from __future__ import annotations

import pytest

from parley_dev.chaos import PROFILES, describe, run


@pytest.mark.chaos
async def test_nothing_is_lost_or_sent_twice_while_parts_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = await run(PROFILES["short"])
    with capsys.disabled():
        print("\n" + describe(outcome))
    assert outcome.acknowledged > 500
    assert all(phase.figures["during"] > 0 for phase in outcome.phases[:2])
    assert outcome.correctness_failures() == []
