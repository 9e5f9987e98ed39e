"""The delivery funnel and reply times of analytics: pure, whatever order the parts arrive."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from parley_analytics.core import Fact, Seen, settle

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
CALLBACKS = [
    Seen("sent", T0 + timedelta(seconds=3), None),
    Seen("delivered", T0 + timedelta(seconds=5), None),
    Seen("read", T0 + timedelta(seconds=9), None),
]


def unsent() -> Fact:
    return Fact(
        id=uuid4(),
        inbound_at=None,
        sent_at=None,
        message_sid=None,
        status=None,
        error_code=None,
        funnel_status=None,
        funnel_error=None,
        delivered_at=None,
        counted_reply=False,
        counted_delivery=False,
    )


def reply_part(fact: Fact) -> Fact:
    return replace(fact, inbound_at=T0)


def sent_part(fact: Fact) -> Fact:
    return replace(fact, sent_at=T0 + timedelta(seconds=2), message_sid="SM1", status="queued")


@given(st.permutations(["reply", "sent", *range(len(CALLBACKS))]))
def test_each_part_in_any_order_counts_once(order: list[str | int]) -> None:
    fact, seen = unsent(), list[Seen]()
    funnel: Counter[tuple[str, int]] = Counter()
    times: Counter[str] = Counter()
    for part in order:
        if part == "reply":
            fact = reply_part(fact)
        elif part == "sent":
            fact = sent_part(fact)
        else:
            seen = sorted([*seen, CALLBACKS[int(part)]], key=lambda s: (s.at, s.status))
        done = settle(fact, seen)
        fact = done.fact
        for status, error, delta in done.moves:
            funnel[(status, error)] += delta
        for metric, ms, delta in done.latencies:
            times[f"{metric}={ms:.0f}"] += delta
    # Nothing left below zero: every retraction took back a sample that was counted.
    assert {k: n for k, n in funnel.items() if n} == {("read", 0): 1}
    assert {k: n for k, n in times.items() if n} == {"reply=2000": 1, "delivered=5000": 1}
    assert fact.delivered_at == T0 + timedelta(seconds=5)


def test_a_refused_send_is_counted_as_failed_with_its_error() -> None:
    fact = replace(reply_part(unsent()), sent_at=T0, status="failed", error_code=21610)
    done = settle(fact, [])
    assert done.moves == (("failed", 21610, 1),)
    # No SID: no reply time (nothing reached Twilio) and no delivery time.
    assert done.latencies == ()
    assert settle(done.fact, []).moves == ()


def test_an_undelivered_callback_moves_the_message_and_keeps_its_error() -> None:
    sent = settle(reply_part(sent_part(unsent())), []).fact
    done = settle(sent, [Seen("undelivered", T0 + timedelta(seconds=4), 30003)])
    assert done.moves == (("queued", 0, -1), ("undelivered", 30003, 1))
    assert done.fact.delivered_at is None
