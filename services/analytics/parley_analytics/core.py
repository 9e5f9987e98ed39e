"""Pure rules of analytics: latency histograms, percentiles, costs, and how a message moves
through the delivery funnel."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from parley_shared.status import fold_statuses

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


# --- the delivery funnel and the reply/delivery times of one outbound message ---


@dataclass(frozen=True)
class Seen:
    """A status callback Twilio sent for a message."""

    status: str
    at: datetime
    error_code: int | None


@dataclass(frozen=True)
class Fact:
    """What analytics knows of an outbound message: its parts arrive on three topics, in
    any order, so every field that comes from a later part may still be missing."""

    id: UUID
    inbound_at: datetime | None
    sent_at: datetime | None
    message_sid: str | None
    status: str | None  # as Twilio accepted it (message.sent)
    error_code: int | None
    funnel_status: str | None  # where the message is counted in the funnel now
    funnel_error: int | None
    delivered_at: datetime | None
    counted_reply: bool
    counted_delivery: bool


@dataclass(frozen=True)
class Settled:
    """A fact moved forward, with what to add to the aggregates."""

    fact: Fact
    # (status, error code, +1 or -1) rows of the funnel, in the hour the message was sent
    moves: tuple[tuple[str, int, int], ...]
    # (metric, milliseconds, +1 or -1) samples, in the hour the inbound arrived
    latencies: tuple[tuple[str, float, int], ...]


def settle(fact: Fact, seen: Sequence[Seen]) -> Settled:
    """Move a message to its current place in the delivery funnel (statuses ordered by time)
    and count its reply and delivery times once each, when both of their ends are known.
    The result depends only on the fact and the callbacks, not on the order they came in."""
    moves: list[tuple[str, int, int]] = []
    after = fact
    if fact.sent_at is not None:
        status = fold_statuses(fact.status, (s.status for s in seen)) or "failed"
        error = next((s.error_code for s in seen if s.status == status), None)
        funnel_error = (error if error is not None else fact.error_code) or 0
        delivered_at = min((s.at for s in seen if s.status in ("delivered", "read")), default=None)
        if (fact.funnel_status, fact.funnel_error) != (status, funnel_error):
            if fact.funnel_status is not None:
                moves.append((fact.funnel_status, fact.funnel_error or 0, -1))
            moves.append((status, funnel_error, 1))
        after = replace(
            after, funnel_status=status, funnel_error=funnel_error, delivered_at=delivered_at
        )
    latencies: list[tuple[str, float, int]] = []
    start = after.inbound_at
    if start is not None:
        reply_end = after.sent_at if after.message_sid else None
        if reply_end is not None and not after.counted_reply:
            latencies.append(("reply", _ms(start, reply_end), 1))
            after = replace(after, counted_reply=True)
        delivered_at = after.delivered_at
        if delivered_at is not None and not after.counted_delivery:
            latencies.append(("delivered", _ms(start, delivered_at), 1))
            after = replace(after, counted_delivery=True)
        elif delivered_at is not None and fact.delivered_at not in (None, delivered_at):
            # An earlier delivery callback came late (WhatsApp ``read`` can beat
            # ``delivered``): count the time again, so it does not depend on arrival order.
            latencies.append(("delivered", _ms(start, fact.delivered_at), -1))
            latencies.append(("delivered", _ms(start, delivered_at), 1))
    return Settled(after, tuple(moves), tuple(latencies))


def _ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"\+[0-9]{3,20}")


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's advice: a leading
    quote). Message bodies are written by anyone who can text the number; phone numbers are
    the one legitimate value starting with ``+`` and stay as they are."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS) and not _PHONE.fullmatch(cell):
        return "'" + cell
    return cell
