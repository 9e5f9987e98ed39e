"""Inbox work under leases: slow calls (a model, Twilio) that hold no database resources.

A service's inbox table is a queue. The worker claims items in one short statement that
leases them (an expiry and a fencing token, committed at once), runs the slow call for each
with no connection held, at most ``max_in_flight`` at a time, and records outcomes in short
statements that only succeed while each lease is still this worker's. An outcome whose lease
was lost (it expired, another worker took the item) is dropped; the deterministic event ids
make the other worker's result the same event anyway.

Outcomes are group-committed: one recorder writes every outcome that finished while the
previous write ran, in one set-based call. Calls started together end together (a poll's
worth of messages reaches the model at once), and a statement per outcome would queue them
on the pool's few connections; one write per group costs one round trip and one commit.

No polling on the hot path: the claimer wakes when the consumer records work (``wake()``),
when a call finishes (its conversation's next item may now be due), at the earliest retry this
process scheduled, and on a slow sweep that picks up what other replicas or crashed workers
left behind (expired leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from opentelemetry import trace

from parley_shared import metrics
from parley_shared.db import TRANSIENT_DB_ERRORS, Pool
from parley_shared.tracing import context_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parley.leases")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Claim(Generic[T]):
    """One leased item: what the queue needs to do the work, and the fencing token."""

    id: UUID
    token: UUID
    work: T
    # The trace of the event the work answers: the slow call continues it.
    traceparent: str | None = None


class Inbox(Protocol[T, R]):
    """A service's queue: how to claim, what the slow call is, how to record an outcome."""

    async def claim(self, pool: Pool, limit: int) -> list[Claim[T]]:
        """Lease up to ``limit`` due items (oldest first, one per conversation) in one
        short statement; returns them with what the call needs (context read then)."""
        ...

    async def perform(self, claim: Claim[T]) -> R:
        """The slow call. Holds no connection; must end within the lease (own time-outs)."""
        ...

    async def backlog(self, pool: Pool) -> tuple[int, float]:
        """Items waiting (due or not, leased or not), and the age in seconds of the message
        the oldest of them answers: what an alert on unanswered messages watches."""
        ...

    async def record(
        self, pool: Pool, outcomes: Sequence[tuple[Claim[T], R]]
    ) -> Sequence[float | None]:
        """Record outcomes (at most one per conversation), each fenced by its claim's token;
        returns, for each, seconds until a retry is due when it was rescheduled, else None."""
        ...


class LeaseWorker(Generic[T, R]):
    def __init__(
        self,
        pool: Pool,
        inbox: Inbox[T, R],
        *,
        name: str,
        max_in_flight: int,
        sweep_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._inbox = inbox
        self._name = name
        self._max_in_flight = max_in_flight
        self._sweep_s = sweep_s
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Monotonic times at which items queued for later fall due (a heap).
        self._due: list[float] = []
        # Outcomes waiting for the recorder, each with the future its call's task awaits.
        self._finished: list[tuple[Claim[T], R, asyncio.Future[None]]] = []
        self._record_wake = asyncio.Event()
        self.peak_in_flight = 0
        metrics.gauge(
            "parley_inbox_in_flight", lambda: len(self._in_flight), "Calls in flight", inbox=name
        )
        metrics.gauge(
            "parley_inbox_in_flight_peak",
            lambda: self.peak_in_flight,
            "Most calls in flight at once since start",
            inbox=name,
        )

    def wake(self) -> None:
        self._wake.set()

    def wake_in(self, delay_s: float) -> None:
        """Look for work again after ``delay_s`` (an item queued for later is due then)."""
        # The database clock may run a little behind this one.
        heapq.heappush(self._due, time.monotonic() + max(delay_s, 0.0) + 0.05)
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_forever())
        sampler = asyncio.create_task(self._sample_forever())
        try:
            while True:
                free = self._max_in_flight - len(self._in_flight)
                full = False
                if free > 0:
                    self._wake.clear()
                    claims = await self._claim(free)
                    for claim in claims:
                        task = asyncio.create_task(self._work(claim))
                        self._in_flight.add(task)
                        task.add_done_callback(self._in_flight.discard)
                    self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
                    full = len(claims) == free
                if full and len(self._in_flight) < self._max_in_flight:
                    continue  # there may be more due right now
                await self._sleep()
        finally:
            for task in (*self._in_flight, recorder, sampler):
                task.cancel()
            await asyncio.gather(*self._in_flight, recorder, sampler, return_exceptions=True)

    async def _claim(self, limit: int) -> list[Claim[T]]:
        try:
            claims = await self._inbox.claim(self._pool, limit)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s cannot claim work yet: %r", self._name, exc)
            await asyncio.sleep(1.0)
            return []
        if claims:
            metrics.count("parley_inbox_claims", len(claims), "Items leased", inbox=self._name)
        return claims

    async def _sleep(self) -> None:
        timeout = self._sweep_s
        if self._due:
            timeout = max(0.0, min(timeout, self._due[0] - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        while self._due and self._due[0] <= time.monotonic():
            heapq.heappop(self._due)

    async def _work(self, claim: Claim[T]) -> None:
        try:
            with tracer.start_as_current_span(
                f"{self._name} work",
                context=context_of(claim.traceparent),
                kind=trace.SpanKind.CONSUMER,
            ):
                outcome = await self._inbox.perform(claim)
        except Exception:
            # The lease runs out and the item is tried again: a bug here must not lose it.
            log.exception(
                "%s: work on %s failed; it is retried when its lease ends", self._name, claim.id
            )
            return
        # The call keeps its slot until its outcome is written, so that ``max_in_flight``
        # also bounds what waits for the recorder.
        recorded = asyncio.get_running_loop().create_future()
        self._finished.append((claim, outcome, recorded))
        self._record_wake.set()
        await recorded

    async def _sample_forever(self, every_s: float = 5.0) -> None:
        depth, age = 0.0, 0.0

        def read_depth() -> float:
            return depth

        def read_age() -> float:
            return age

        metrics.gauge("parley_inbox_depth", read_depth, "Items waiting", inbox=self._name)
        metrics.gauge(
            "parley_inbox_oldest_age_seconds",
            read_age,
            "Age of the message the oldest waiting item answers",
            inbox=self._name,
        )
        while True:
            try:
                count, oldest = await self._inbox.backlog(self._pool)
                depth, age = float(count), oldest
            except TRANSIENT_DB_ERRORS as exc:
                log.debug("%s cannot sample its backlog: %r", self._name, exc)
            await asyncio.sleep(every_s)

    async def _record_forever(self) -> None:
        while True:
            await self._record_wake.wait()
            self._record_wake.clear()
            group, self._finished = self._finished, []
            if group:
                await self._record(group)

    async def _record(self, group: list[tuple[Claim[T], R, asyncio.Future[None]]]) -> None:
        delay = 0.5
        while True:
            try:
                retries = await self._inbox.record(self._pool, [(c, o) for c, o, _ in group])
                break
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("%s cannot record %d outcomes yet: %r", self._name, len(group), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception:
                if len(group) > 1:
                    # One outcome the write cannot take must not hold back the others.
                    for one in group:
                        await self._record([one])
                    return
                log.exception(
                    "%s: cannot record %s; it is retried when its lease ends",
                    self._name,
                    group[0][0].id,
                )
                retries = [None]
                break
        metrics.count("parley_inbox_records", len(group), "Outcomes recorded", inbox=self._name)
        metrics.count("parley_inbox_record_writes", 1, "Writes of outcomes", inbox=self._name)
        for retry_in in retries:
            if retry_in is not None:
                self.wake_in(retry_in)
        for _, _, recorded in group:
            if not recorded.done():
                recorded.set_result(None)
        # These conversations' next items may be due now, and slots are free.
        self._wake.set()
