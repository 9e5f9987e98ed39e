"""Load benchmark: people texting Parley, against a no-durability reference on this machine.

    ./dev bench load                                  # 300 users, 1 s model, 60 s
    ./dev bench load --users 50 --model-ms 50
    ./dev bench load --rate 20 --seconds 30           # open loop: pipeline overhead at 20/s
    ./dev bench load --users 50 --model-ms 50 --rounds 3   # the median ratio of 3 rounds

Starts a Tansu broker, PostgreSQL (with pg_stat_statements), a fake OpenAI server with a fixed
latency, every Parley service as its own process (as ``./dev run`` does) and the Twilio sandbox
(in this process, which also plays the users). The same traffic is then sent to the
reference (``parley_dev.reference``: the same HTTP flow in one process, no broker, no
database). Prints replies/s, end-to-end latency, pipeline overhead, lost and duplicated
replies, CPU per answered message for every process, SQL statements and pool acquisitions per
answered message, and Parley's ratio to the reference. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import asyncpg
import httpx

from parley_dev import sandbox
from parley_dev.infra import Postgres, Tansu, free_port, stop_pid
from parley_dev.loadgen import Traffic, cpu_seconds, describe_latency, tree_cpu_seconds
from parley_dev.run import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, Service, launch
from parley_dev.serve import serving
from parley_dev.stack import running, sandboxed
from parley_shared.metrics import parse

Probe = dict[str, Callable[[], float]]
# What Twilio would call; the sandbox signs for it and delivers to the local gateway.
PUBLIC = "https://parley.bench.test"


async def drive(
    traffic: Traffic, args: argparse.Namespace, probe: Probe, on_window: Callable[[bool], object]
) -> dict[str, object]:
    """Warm up, measure one window, stop the users, drain; returns the figures."""
    # httpx's pool scans its connections on every request: with hundreds of users the load
    # generator, not the system under test, would be what is measured.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        if args.rate:
            users = [asyncio.create_task(traffic.open_loop(http, args.users, args.rate))]
        else:
            users = [
                asyncio.create_task(traffic.closed_loop_user(http, i)) for i in range(args.users)
            ]
        try:
            return await measure(traffic, args, probe, on_window)
        finally:
            traffic.stop()
            for task in users:
                task.cancel()
            await asyncio.gather(*users, return_exceptions=True)


async def measure(
    traffic: Traffic, args: argparse.Namespace, probe: Probe, on_window: Callable[[bool], object]
) -> dict[str, object]:
    await asyncio.sleep(args.warmup)
    before = {name: read() for name, read in probe.items()}
    await on_window(True)  # type: ignore[misc]
    start = time.perf_counter()
    await asyncio.sleep(args.seconds)
    end = time.perf_counter()
    after = {name: read() for name, read in probe.items()}
    window_stats = await on_window(False)  # type: ignore[misc]
    traffic.stop()
    drain_until = time.monotonic() + args.drain
    # A bounded wait for the last replies; the count is checked, nothing signals it.
    while traffic.lost() and time.monotonic() < drain_until:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    e2e = traffic.window(start, end)
    return {
        "replies": len(e2e),
        "rate": len(e2e) / (end - start),
        "e2e": e2e,
        "cpu": {name: after[name] - before[name] for name in probe},
        "lost": traffic.lost(),
        "duplicated": traffic.duplicated(),
        "refused": traffic.refused,
        "window": window_stats,
    }


def report(name: str, figures: dict[str, object], model_s: float) -> None:
    replies = int(figures["replies"])  # type: ignore[call-overload]
    print(f"\n== {name}")
    print(
        f"replies/s {figures['rate']:.1f} ({replies} in the window); lost {figures['lost']}, "
        f"duplicated {figures['duplicated']}, webhooks refused {figures['refused']}"
    )
    print(describe_latency(figures["e2e"], model_s))  # type: ignore[arg-type]
    cpu: dict[str, float] = figures["cpu"]  # type: ignore[assignment]
    per = max(replies, 1)
    total = sum(v for k, v in cpu.items() if not k.startswith("harness"))
    print(f"CPU per answered message: {total / per * 1000:.1f} ms (system under test)")
    for process, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {process:<22} {seconds:7.2f} s   {seconds / per * 1000:6.2f} ms/message")
    window: dict[str, object] | None = figures["window"]  # type: ignore[assignment]
    if window:
        print(
            f"SQL statements per message {float(window['statements']) / per:.1f}, "  # type: ignore[arg-type]
            f"transactions {float(window['transactions']) / per:.1f}, "  # type: ignore[arg-type]
            f"pool acquisitions {float(window['acquisitions']) / per:.1f}"  # type: ignore[arg-type]
        )
        peaks = window.get("peaks") or {}
        print(
            "most calls in flight at once, each service on its pool of AI_POOL_SIZE / "
            "SENDER_POOL_SIZE connections (8): "
            + ", ".join(f"{inbox} {n:.0f}" for inbox, n in sorted(peaks.items()))  # type: ignore[attr-defined]
        )
        print("  statements by execution time (calls and ms per message):")
        for calls, ms, query in window["top"]:  # type: ignore[attr-defined]
            print(f"  {calls / per:6.2f} {ms / per:6.3f} ms  {query}")
    if figures.get("hops"):
        print("per hop (ms):")
        for hop, p50, p99 in figures["hops"]:  # type: ignore[attr-defined]
            print(f"  {hop:<50} p50 {p50:7.1f}   p99 {p99:7.1f}")


async def scrape(ports: dict[str, int]) -> dict[str, float]:
    """Every service's /metrics series, summed by series name."""
    series: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for port in ports.values():
            with contextlib.suppress(httpx.HTTPError):
                response = await http.get(f"http://127.0.0.1:{port}/metrics")
                if response.status_code == 200:
                    for name, value in parse(response.text).items():
                        series[name] = series.get(name, 0.0) + value
    return series


async def acquisitions(ports: dict[str, int]) -> float:
    return sum(
        v for k, v in (await scrape(ports)).items() if k.startswith("parley_db_pool_acquisitions")
    )


@contextlib.asynccontextmanager
async def parley(
    env: dict[str, str], logs: Path
) -> AsyncIterator[tuple[str, dict[str, int], dict[str, int]]]:
    """Every Parley service as a process; yields (gateway URL, pids, ports) by service."""
    async with running(env, logs) as stack:
        pids = {r.service.name: stack.pids()[r.name] for r in stack.replicas}
        ports = {r.service.name: r.port for r in stack.replicas}
        yield stack.urls("gateway")[0], pids, ports


async def main(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="parley-load-"))
    broker = Tansu(state / "tansu")
    cluster = Postgres(Path(tempfile.mkdtemp(prefix="parley-load-pg-", dir="/var/tmp")))
    cluster.statement_stats = True
    fake_port = free_port()
    fake = None
    model_s = args.model_ms / 1000
    try:
        kafka = broker.start()
        database = cluster.start()
        admin = await asyncpg.connect(database)
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        fake = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parley_dev.fake_openai",
            env={
                **os.environ,
                "FAKE_OPENAI_PORT": str(fake_port),
                "FAKE_OPENAI_DELAY_MS": str(args.model_ms),
            },
            start_new_session=True,
        )
        box = sandbox.Sandbox(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN)
        async with serving(sandbox.create_app(box)) as twilio_url:
            env = {
                **sandboxed(
                    kafka=kafka,
                    database=database,
                    twilio=twilio_url,
                    openai=f"http://127.0.0.1:{fake_port}",
                    public=PUBLIC,
                    name="load",
                ),
                # Closed-loop users text far more than a person does: no abuse limit here.
                "AI_RATE_LIMIT_PER_MINUTE": "0",
                **dict(kv.split("=", 1) for kv in args.env),
            }
            harness: Probe = {
                "harness: users+sandbox": lambda: cpu_seconds(os.getpid()),
                "harness: fake OpenAI": lambda: cpu_seconds(fake.pid),  # type: ignore[union-attr]
            }
            ratios: list[float] = []
            for round_ in range(1, args.rounds + 1):
                if args.rounds > 1:
                    print(f"\n### round {round_} of {args.rounds}")
                figures = {}
                if not args.skip_parley:
                    figures["parley"] = await run_parley(
                        args, env, box, state / "logs", broker, cluster, admin, harness
                    )
                    report("Parley", figures["parley"], model_s)
                if not args.skip_reference:
                    figures["reference"] = await run_reference(
                        args, box, twilio_url, fake_port, harness
                    )
                    report("no-durability reference", figures["reference"], model_s)
                if len(figures) == 2:
                    ratios.append(
                        float(figures["parley"]["rate"])  # type: ignore[arg-type]
                        / max(float(figures["reference"]["rate"]), 1e-9)  # type: ignore[arg-type]
                    )
                    print(f"\nParley / reference, replies/s: {ratios[-1]:.2f}")
            if len(ratios) > 1:
                # The box's speed drifts over minutes (a shared VM): each round compares two
                # runs a minute apart, and the median of rounds is the figure to quote.
                print(
                    "\nParley / reference by round: "
                    + ", ".join(f"{r:.2f}" for r in ratios)
                    + f"; median {statistics.median(ratios):.2f}"
                )
        await admin.close()
    finally:
        if fake is not None:
            stop_pid(fake.pid)
        broker.stop()
        cluster.destroy()


async def run_parley(
    args: argparse.Namespace,
    env: dict[str, str],
    box: sandbox.Sandbox,
    logs: Path,
    broker: Tansu,
    cluster: Postgres,
    admin: asyncpg.Connection,
    harness: Probe,
) -> dict[str, object]:
    """One measured window of Parley, every service started for it and stopped after."""
    async with parley(env, logs) as (gateway, pids, ports):
        traffic = Traffic(gateway, PUBLIC, SANDBOX_AUTH_TOKEN, SANDBOX_ACCOUNT_SID)
        box.on_send = traffic.on_send
        box.deliver_to = (PUBLIC, gateway)
        probe: Probe = {
            **{name: (lambda p=pid: cpu_seconds(p)) for name, pid in pids.items()},
            "postgres": lambda: tree_cpu_seconds(cluster.pid() or 0),
            "broker (tansu)": lambda: cpu_seconds(broker.process.pid),  # type: ignore[union-attr]
            **harness,
        }
        marks: dict[str, float] = {}

        async def on_window(starting: bool) -> dict[str, object] | None:
            if starting:
                marks["since"] = time.time()
                await admin.execute("SELECT pg_stat_statements_reset()")
                marks["xacts"] = await _xacts(admin)
                marks["acq"] = await acquisitions(ports)
                return None
            top = await admin.fetch(
                "SELECT calls, total_exec_time, "
                "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) q "
                "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12"
            )
            return {
                "statements": await admin.fetchval("SELECT sum(calls) FROM pg_stat_statements"),
                "transactions": await _xacts(admin) - marks["xacts"],
                "acquisitions": await acquisitions(ports) - marks["acq"],
                "top": [(r["calls"], r["total_exec_time"], r["q"]) for r in top],
                "peaks": {
                    k.split('"')[1]: v
                    for k, v in (await scrape(ports)).items()
                    if k.startswith("parley_inbox_in_flight_peak")
                },
            }

        figures = await drive(traffic, args, probe, on_window)
        figures["hops"] = await hops(admin, marks["since"])
        return figures


async def hops(admin: asyncpg.Connection, since: float) -> list[tuple[str, float, float]]:
    """Where the time between webhook and send goes, from the analytics facts of messages
    answered since ``since`` (epoch seconds): (hop, p50 ms, p99 ms)."""
    rows = await admin.fetch(
        "WITH f AS (SELECT extract(epoch FROM occurred_at - inbound_at) * 1000 - ai_latency_ms "
        "AS to_reply, ai_latency_ms AS model, extract(epoch FROM sent_at - occurred_at) * 1000 "
        "AS to_sent FROM analytics_facts WHERE direction = 'outbound' AND source = 'ai' "
        "AND sent_at IS NOT NULL AND inbound_at >= to_timestamp($1)) "
        "SELECT hop, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99 FROM f, LATERAL (VALUES "
        "(1, 'webhook -> reply recorded, less the model call', to_reply), "
        "(2, 'model call', model), "
        "(3, 'reply recorded -> Twilio accepted the send', to_sent)) AS v(n, hop, ms) "
        "GROUP BY n, hop ORDER BY n",
        since,
    )
    queued = await admin.fetchrow(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99 FROM (SELECT "
        "extract(epoch FROM recorded_at - occurred_at) * 1000 AS ms FROM ai_inbox "
        "WHERE occurred_at >= to_timestamp($1)) q",
        since,
    )
    figures = [(r["hop"], r["p50"], r["p99"]) for r in rows]
    if queued is not None and figures:
        hop = "  of which webhook -> queued in the ai's inbox"
        figures.insert(1, (hop, queued["p50"] or 0.0, queued["p99"] or 0.0))
    return figures


async def _xacts(admin: asyncpg.Connection) -> float:
    return float(
        await admin.fetchval(
            "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    )


async def run_reference(
    args: argparse.Namespace, box: sandbox.Sandbox, twilio_url: str, fake_port: int, harness: Probe
) -> dict[str, object]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REFERENCE_PORT": str(port),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "TWILIO_API_BASE_URL": twilio_url,
        "TWILIO_ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "PUBLIC_BASE_URL": url,
    }
    reference = Service("reference", "parley_dev.reference", "REFERENCE_PORT", port)
    process = launch(reference, env, Path(tempfile.mkdtemp(prefix="parley-ref-")))
    try:
        traffic = Traffic(url, url, SANDBOX_AUTH_TOKEN, SANDBOX_ACCOUNT_SID)
        box.on_send = traffic.on_send

        async def no_stats(starting: bool) -> None:
            return None

        return await drive(
            traffic, args, {"reference": lambda: cpu_seconds(process.pid), **harness}, no_stats
        )
    finally:
        stop_pid(process.pid)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--model-ms", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--drain", type=float, default=30)
    parser.add_argument("--rate", type=float, help="open loop: messages per second")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for Parley's services")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-parley", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=1, help="Parley then the reference, this many times"
    )
    asyncio.run(main(parser.parse_args()))
