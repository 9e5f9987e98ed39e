"""Fault injection: the whole stack under load while its parts fail, one fault after another.

    ./dev chaos                    # the full run (several minutes)
    ./dev chaos --profile short    # what CI runs (tests/chaos)
    ./dev chaos --durable          # the broker's log on S3, and a broker restart

Two replicas of every service run as processes (restarted when they die), with a Tansu
broker (in memory; with ``--durable`` its log is on S3, a local SeaweedFS), PostgreSQL, the
Twilio sandbox and a fake OpenAI (50 ms) in this process. Closed-loop users text from a new
number each time, so every acknowledged webhook must get exactly one message back on its
number, whatever the reply says (an AI answer or the fallback). Status callbacks come twice
each, in random order, throughout. Faults, in turn: SIGKILL of random service processes;
PostgreSQL stopped and restarted (an immediate shutdown); the broker paused (SIGSTOP) and,
when durable, killed and restarted; Twilio answering 429/500, taking a message but answering
500; Twilio hanging on 2% of sends; the model answering 429/500; the model hanging on 2% of
calls. (``tests/integration/test_broker_restart.py`` restarts a durable broker in CI.)

Printed per fault: replies/s during it and after, and recovery time (from the fault's end
until everything acknowledged before it was answered). Checked at the end: no acknowledged
message unanswered, none answered twice, no event in a dead-letter topic, every status
a gateway took reflected in the conversation API's state, and throughput under the 2%
Twilio hangs at least 80% of the fault-free figure (the window just before it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import asyncpg

from parley_dev import fake_openai, sandbox
from parley_dev.dlq import read_dead_letters
from parley_dev.infra import Postgres, SeaweedS3, Tansu
from parley_dev.loadgen import Traffic
from parley_dev.run import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
from parley_dev.serve import serving
from parley_dev.stack import Running, running, sandboxed
from parley_shared import topics
from parley_shared.settings import BusSettings
from parley_shared.status import RANK

PUBLIC = "https://parley.chaos.test"


@dataclass(frozen=True)
class Profile:
    users: int
    fault_s: float  # how long each fault lasts
    after_s: float  # fault-free time after each, to recover and be measured
    postgres_down_s: float
    kills: int
    drain_s: float
    # The broker's log on S3 (SeaweedFS): it can then be killed and restarted, not only
    # paused. Off by default: Tansu's S3 engine slows as its log grows (replies/s fall by
    # half within minutes), which would measure Tansu rather than Parley.
    durable: bool = False


PROFILES = {
    "short": Profile(users=16, fault_s=12, after_s=12, postgres_down_s=10, kills=4, drain_s=60),
    "full": Profile(users=32, fault_s=30, after_s=25, postgres_down_s=25, kills=12, drain_s=120),
}


class NumberedTraffic(Traffic):
    """Each message from a new number, so a reply is matched by the number it goes to."""

    def marker_of(self, message: sandbox.SentMessage) -> str:
        return message.to

    async def closed_loop_user(self, http: aiohttp.ClientSession, user: int) -> None:
        seq = 0
        while not self._stop.is_set():
            unique = user * 100_000 + seq
            seq += 1
            number = f"+1555{unique:07d}"
            waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._waiting[number] = waiter
            if await self.post(http, unique, number):
                await asyncio.wait([waiter], timeout=30)
            else:
                self._waiting.pop(number, None)
            await asyncio.sleep(0.2)


@dataclass
class Phase:
    name: str
    begin: Callable[[], Awaitable[None]]
    end: Callable[[], Awaitable[None]]
    started: float = 0.0
    ended: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    phases: list[Phase]
    acknowledged: int
    lost: int
    duplicated: int
    dead_letters: int
    wrong_statuses: list[str]
    hang_ratio: float

    def correctness_failures(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{self.lost} acknowledged message(s) never answered")
        if self.duplicated:
            found.append(f"{self.duplicated} message(s) answered more than once")
        if self.dead_letters:
            found.append(f"{self.dead_letters} event(s) dead-lettered")
        if self.wrong_statuses:
            found.append(
                f"{len(self.wrong_statuses)} message(s) whose status does not match, e.g. "
                + "; ".join(self.wrong_statuses[:3])
            )
        return found

    def failures(self) -> list[str]:
        slow = [f"2% Twilio hangs left {self.hang_ratio:.0%} of the throughput"]
        return self.correctness_failures() + (slow if self.hang_ratio < 0.8 else [])


def faults(
    profile: Profile,
    stack: Running,
    box: sandbox.Sandbox,
    model: fake_openai.FakeOpenAI,
    broker: Tansu,
    database: Postgres,
) -> list[Phase]:
    async def nothing() -> None:
        return None

    async def kill_some() -> None:
        victims = [r.name for r in stack.replicas]
        for _ in range(profile.kills):
            stack.kill(random.choice(victims))
            await asyncio.sleep(profile.fault_s / profile.kills)

    async def stop_postgres() -> None:
        pid = database.pid()
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, like a crash
        await asyncio.sleep(profile.postgres_down_s)

    async def start_postgres() -> None:
        await asyncio.to_thread(database.start)

    def signal_broker(sig: signal.Signals) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            assert broker.process is not None
            broker.process.send_signal(sig)
            if sig == signal.SIGSTOP:
                await asyncio.sleep(profile.fault_s)

        return send

    def twilio(chaos: sandbox.Chaos | None) -> Callable[[], Awaitable[None]]:
        async def set_chaos() -> None:
            box.chaos = chaos
            if chaos is not None:
                await asyncio.sleep(profile.fault_s)

        return set_chaos

    def openai(**rates: float) -> Callable[[], Awaitable[None]]:
        async def set_rates() -> None:
            for name in ("error_rate", "throttle_rate", "hang_rate"):
                setattr(model, name, rates.get(name, 0.0))
            if rates:
                await asyncio.sleep(profile.fault_s)

        return set_rates

    async def wait() -> None:
        await asyncio.sleep(profile.fault_s)

    async def kill_broker() -> None:
        assert broker.process is not None
        broker.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(broker.process.wait)
        await asyncio.sleep(profile.fault_s / 2)

    async def start_broker() -> None:
        await asyncio.to_thread(broker.start)

    return [
        Phase("no fault", wait, nothing),
        Phase("SIGKILL services", kill_some, nothing),
        Phase("PostgreSQL down", stop_postgres, start_postgres),
        Phase("broker paused", signal_broker(signal.SIGSTOP), signal_broker(signal.SIGCONT)),
        *(
            [Phase("broker killed, restarted", kill_broker, start_broker)]
            if profile.durable
            else []
        ),
        Phase(
            "Twilio 429/500, taken+500",
            twilio(
                sandbox.Chaos(
                    error_rate=0.05,
                    accept_then_error_rate=0.05,
                    throttle_rate=0.05,
                    list_error_rate=0.05,
                )
            ),
            twilio(None),
        ),
        Phase("Twilio hangs 2%", twilio(sandbox.Chaos(hang_rate=0.02, hang_s=10)), twilio(None)),
        Phase("model 429/500", openai(error_rate=0.05, throttle_rate=0.05), openai()),
        Phase("model hangs 2%", openai(hang_rate=0.02), openai()),
    ]


async def run_phases(phases: list[Phase], profile: Profile, traffic: NumberedTraffic) -> None:
    for phase in phases:
        phase.started = time.perf_counter()
        await phase.begin()
        await phase.end()
        phase.ended = time.perf_counter()
        await asyncio.sleep(profile.after_s)
        during = traffic.window(phase.started, phase.ended)
        after = traffic.window(phase.ended, phase.ended + profile.after_s)
        pending = [
            traffic.replies.get(marker, float("inf")) - phase.ended
            for marker in traffic.acknowledged
            if traffic.posted[marker] < phase.ended
        ]
        phase.figures = {
            "during": len(during) / max(phase.ended - phase.started, 1e-9),
            "after": len(after) / profile.after_s,
            "recovery": max([0.0, *pending]),
        }
        print(f"{phase.name}: done", flush=True)


async def check_statuses(database: str, box: sandbox.Sandbox, patience_s: float) -> list[str]:
    """Messages whose status in the projection is not what their callbacks say, once it has
    had ``patience_s`` to catch up: at least the furthest status a gateway acknowledged, at
    most the furthest one posted (a callback that timed out at the gateway may still have
    been published)."""
    bounds = {
        sid: (
            max(RANK[s] for s in seen),
            max(RANK[s] for s in box.attempted.get(sid, seen)),
        )
        for sid, seen in box.reported.items()
    }
    deadline = time.monotonic() + patience_s
    conn = await asyncpg.connect(database)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT message_sid, status FROM conversation_messages WHERE message_sid = ANY($1)",
                list(bounds),
            )
            shown = {row["message_sid"]: row["status"] for row in rows}
            wrong = [
                f"{sid}: shown {shown.get(sid)}, acknowledged {box.reported[sid]}, "
                f"posted {box.attempted.get(sid)}"
                for sid, (low, high) in bounds.items()
                if not low <= RANK.get(shown.get(sid) or "", -1) <= high
            ]
            if not wrong or time.monotonic() > deadline:
                return wrong
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def run(profile: Profile, out_dir: Path | None = None) -> Outcome:
    state = out_dir or Path(tempfile.mkdtemp(prefix="parley-chaos-"))
    s3 = SeaweedS3(state / "s3") if profile.durable else None
    broker = Tansu(state / "tansu")
    database = Postgres(Path(tempfile.mkdtemp(prefix="parley-chaos-pg-", dir="/var/tmp")))
    box = sandbox.Sandbox(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN)
    box.shuffle_callbacks = box.duplicate_callbacks = True
    model = fake_openai.FakeOpenAI(delay_s=0.05, hang_s=10)
    try:
        if s3 is not None:
            broker.storage, broker.env = s3.start(), s3.env
        kafka = broker.start()
        url = database.start()
        async with (
            serving(sandbox.create_app(box)) as twilio_url,
            serving(fake_openai.create_app(model)) as openai_url,
        ):
            env = {
                **sandboxed(
                    kafka=kafka,
                    database=url,
                    twilio=twilio_url,
                    openai=openai_url,
                    public=PUBLIC,
                    name="chaos",
                ),
                "SENDER_TIMEOUT_S": "2",
                "AI_TIMEOUT_S": "2",
                "AI_MAX_RETRIES": "1",
                "INBOX_LEASE_GRACE_S": "5",
            }
            async with running(env, state / "logs", replicas=2, restart=True) as stack:
                gateways = stack.urls("gateway")
                box.deliver_to, box.failover = (PUBLIC, gateways[0]), gateways[1:]
                traffic = NumberedTraffic(
                    gateways[0],
                    PUBLIC,
                    SANDBOX_AUTH_TOKEN,
                    SANDBOX_ACCOUNT_SID,
                    failover=gateways[1:],
                )
                box.on_send = traffic.on_send
                phases = faults(profile, stack, box, model, broker, database)
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=15),
                ) as http:
                    users = [
                        asyncio.create_task(traffic.closed_loop_user(http, i))
                        for i in range(profile.users)
                    ]
                    try:
                        await run_phases(phases, profile, traffic)
                    finally:
                        traffic.stop()
                        await asyncio.gather(*users, return_exceptions=True)
                deadline = time.monotonic() + profile.drain_s
                while traffic.lost() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3)  # a duplicate, if any, would come now
                bus = BusSettings(
                    kafka_bootstrap_servers=kafka, kafka_topic_prefix=env["KAFKA_TOPIC_PREFIX"]
                )
                dead = await read_dead_letters(bus, list(topics.ALL))
                wrong = await check_statuses(url, box, profile.drain_s)
        # Against the fault-free window just before it, not the first phase: the machine
        # and the tables are then as they are during the hangs.
        at = next(i for i, p in enumerate(phases) if p.name == "Twilio hangs 2%")
        baseline = phases[at - 1].figures["after"]
        hangs = phases[at].figures["during"]
        return Outcome(
            phases=phases,
            acknowledged=len(traffic.acknowledged),
            lost=traffic.lost(),
            duplicated=traffic.duplicated(),
            dead_letters=len(dead),
            wrong_statuses=wrong,
            hang_ratio=hangs / max(baseline, 1e-9),
        )
    finally:
        broker.stop()
        database.destroy()
        if s3 is not None:
            s3.stop()


def describe(outcome: Outcome) -> str:
    lines = [
        f"{p.name:<28} replies/s during {p.figures['during']:6.1f}, after "
        f"{p.figures['after']:6.1f}; recovered in {p.figures['recovery']:.1f}s"
        for p in outcome.phases
    ]
    lines.append(
        f"acknowledged {outcome.acknowledged}, unanswered {outcome.lost}, answered twice "
        f"{outcome.duplicated}, dead letters {outcome.dead_letters}, statuses wrong "
        f"{len(outcome.wrong_statuses)}; throughput with 2% Twilio hangs: "
        f"{outcome.hang_ratio:.0%} of fault-free"
    )
    lines += [f"FAILED: {failure}" for failure in outcome.failures()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument(
        "--durable", action="store_true", help="the broker's log on S3; adds a broker restart"
    )
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    outcome = asyncio.run(run(replace(profile, durable=args.durable)))
    print("\n" + describe(outcome))
    return 1 if outcome.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
