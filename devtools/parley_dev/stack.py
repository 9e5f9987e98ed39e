"""Every Parley service as its own process, as ``./dev run`` starts them, for the load
benchmark and the fault-injection suite: any number of replicas of each, each on its own port,
restarted when it dies (the supervisor of ``./dev run``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from parley_dev.infra import free_port, stop_pid
from parley_dev.run import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SERVICES, Service, launch
from parley_dev.supervisor import Supervisor


def sandboxed(
    *, kafka: str, database: str, twilio: str, openai: str, public: str, name: str
) -> dict[str, str]:
    """The environment of a stack whose third parties are fakes: the Twilio sandbox at
    ``twilio``, a fake OpenAI at ``openai``, webhooks signed for ``public``; its topics under a
    prefix of its own (``name`` and a random suffix), so runs never share a log."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_TOPIC_PREFIX": f"{name}{uuid.uuid4().hex[:6]}.",
        "DATABASE_URL": database,
        # Replicas come and go here: a short session timeout keeps rejoining quick.
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "PUBLIC_BASE_URL": public,
        "API_TOKEN": f"{name}-api-token",
        "LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "TWILIO_API_BASE_URL": twilio,
        "OPENAI_API_KEY": f"sk-{name}",
        "OPENAI_BASE_URL": openai + "/v1",
    }


@dataclass(frozen=True)
class Replica:
    service: Service
    index: int
    port: int

    @property
    def name(self) -> str:
        return f"{self.service.name}#{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Running:
    replicas: list[Replica]
    supervisor: Supervisor

    def urls(self, service: str) -> list[str]:
        return [r.url for r in self.replicas if r.service.name == service]

    def pids(self) -> dict[str, int]:
        """Each replica's current process (a restarted one has a new pid)."""
        return {r.name: self.supervisor.process(r.name).pid for r in self.replicas}

    def kill(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.supervisor.process(name).send_signal(signal.SIGKILL)

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Until every replica answers ``/readyz`` with 200."""
        async with httpx.AsyncClient(timeout=5) as http:
            for replica in self.replicas:
                deadline = time.monotonic() + timeout_s
                while await _status(http, replica.url + "/readyz") != 200:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{replica.name} not ready")
                    await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(
    env: dict[str, str], logs: Path, *, replicas: int = 1, restart: bool = False
) -> AsyncIterator[Running]:
    """Start ``replicas`` processes of every service with ``env`` (ports are added), wait
    until all are ready; with ``restart``, one that dies is started again at once."""
    every = [
        Replica(service, index, free_port()) for service in SERVICES for index in range(replicas)
    ]
    by_name = {replica.name: replica for replica in every}

    def start(name: str, wait: bool = False) -> subprocess.Popen[bytes]:
        replica = by_name[name]
        own = {**env, replica.service.port_env: str(replica.port)}
        return launch(replica.service, own, logs, wait=wait, log_name=replica.name)

    supervisor = Supervisor(start, sys.stderr, base_s=0.2, cap_s=2.0, stable_s=10.0)
    stack = Running(every, supervisor)
    watching: asyncio.Task[None] | None = None
    try:
        for replica in every:
            supervisor.add(replica.name, start(replica.name, wait=True))
        await stack.ready()
        if restart:
            watching = asyncio.create_task(_watch(supervisor))
        yield stack
    finally:
        if watching is not None:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        for process in supervisor.processes():
            stop_pid(process.pid)
            process.poll()  # stop_pid reaped it; let the Popen know


async def _watch(supervisor: Supervisor) -> None:
    while True:
        supervisor.tick()
        await asyncio.sleep(0.2)


async def _status(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url)).status_code
    except httpx.HTTPError:
        return 0
