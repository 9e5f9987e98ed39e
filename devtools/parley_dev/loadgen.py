"""Load generation and measurement for ``./dev bench load``.

People text a Twilio number: each user posts a signed inbound webhook and (closed loop) waits
for the reply to reach the Twilio sandbox before texting again, or (open loop) messages are
posted at a fixed rate. What the system under test does in between is its own business; the
figures come from outside it: replies/s, end-to-end latency, lost and duplicated replies, CPU
seconds of every process, and Postgres statement counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from parley_dev.sandbox import SentMessage

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (and of its reaped children), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the command: state=0 ... utime=11 stime=12 cutime=13 cstime=14.
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU of a process, its live children and the children it reaped (Postgres backends)."""
    total = cpu_seconds(root, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += cpu_seconds(int(entry))
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Traffic:
    """Users texting one target (Parley's gateway or the reference), and what came back."""

    target: str  # base URL the webhooks are posted to
    public: str  # base URL they are signed for
    auth_token: str
    account_sid: str
    our_number: str = "+15557650000"
    # More gateways behind the same public URL: a post whose connection fails goes to the
    # next one, as a load balancer would send it.
    failover: list[str] = field(default_factory=list)
    posted: dict[str, float] = field(default_factory=dict)  # marker -> when posted
    acknowledged: set[str] = field(default_factory=set)
    replies: dict[str, float] = field(default_factory=dict)  # marker -> when answered
    sends: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    _waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._validator = RequestValidator(self.auth_token)

    def marker_of(self, message: SentMessage) -> str:
        """Which posted message a reply answers: the model echoes the marker."""
        return message.body.rsplit(" ", 1)[-1]

    def on_send(self, message: SentMessage) -> None:
        marker = self.marker_of(message)
        self.sends[marker] += 1
        if marker in self.replies:
            return
        now = time.perf_counter()
        self.replies[marker] = now
        waiter = self._waiting.pop(marker, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    async def post(self, http: aiohttp.ClientSession, user: int, marker: str) -> bool:
        params = {
            "MessageSid": "SM" + os.urandom(16).hex(),
            "AccountSid": self.account_sid,
            "From": f"+1555{user:07d}",
            "To": self.our_number,
            "Body": f"question {marker}",
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        path = "/webhooks/twilio/messages"
        signature = self._validator.compute_signature(self.public + path, params)
        self.posted[marker] = time.perf_counter()
        targets = [self.target, *self.failover, self.target]
        for attempt, target in enumerate(targets):
            try:
                async with http.post(
                    target + path,
                    data=urlencode(params),
                    headers={
                        "X-Twilio-Signature": signature,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                ) as response:
                    status = response.status
                    await response.read()
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # A kept-alive connection the server had just closed (idle past uvicorn's
                # keep-alive time-out while the user waited for a reply), or a gateway that
                # is down: Twilio retries too.
                if attempt == len(targets) - 1:
                    self.refused += 1
                    return False
            except (aiohttp.ClientError, TimeoutError):
                self.refused += 1
                return False
        if status != 200:
            self.refused += 1
            return False
        self.acknowledged.add(marker)
        return True

    async def closed_loop_user(self, http: aiohttp.ClientSession, user: int) -> None:
        seq = 0
        while not self._stop.is_set():
            marker = f"u{user}-{seq}"
            seq += 1
            waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._waiting[marker] = waiter
            if not await self.post(http, user, marker):
                self._waiting.pop(marker, None)
                await asyncio.sleep(0.2)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, 60)

    async def open_loop(self, http: aiohttp.ClientSession, users: int, rate: float) -> None:
        began = time.perf_counter()
        sent = 0
        posts: set[asyncio.Task[bool]] = set()
        while not self._stop.is_set():
            due = began + sent / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(self.post(http, sent % users, f"o{sent}"))
            posts.add(task)
            task.add_done_callback(posts.discard)
            sent += 1
        await asyncio.gather(*posts)

    def stop(self) -> None:
        self._stop.set()

    def window(self, start: float, end: float) -> list[float]:
        """End-to-end seconds of the replies that arrived between ``start`` and ``end``."""
        return [
            at - self.posted[marker]
            for marker, at in self.replies.items()
            if start <= at < end and marker in self.posted
        ]

    def lost(self) -> int:
        return len(self.acknowledged - self.replies.keys())

    def duplicated(self) -> int:
        return sum(count - 1 for count in self.sends.values() if count > 1)


def describe_latency(e2e: list[float], model_s: float) -> str:
    if not e2e:
        return "no replies"
    over = [(x - model_s) * 1000 for x in e2e]
    return (
        f"e2e p50 {percentile(e2e, 0.5) * 1000:.0f} ms, p95 {percentile(e2e, 0.95) * 1000:.0f}, "
        f"p99 {percentile(e2e, 0.99) * 1000:.0f}; overhead (e2e - model) p50 "
        f"{percentile(over, 0.5):.0f} ms, p99 {percentile(over, 0.99):.0f}, "
        f"mean {statistics.fmean(over):.0f}"
    )
