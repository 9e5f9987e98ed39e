"""Keeps local service processes running: a crashed one is started again, with backoff.

What a process manager (Kubernetes, systemd) does in production, for ``./dev run``: one
service crashing must not take the others down, and a service that crashes at once again
(bad settings, a port in use) must not be restarted in a hot loop. The delay doubles with
each quick crash and resets once a process has stayed up for ``stable_s``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


def restart_delay(crashes: int, *, base_s: float = 1.0, cap_s: float = 30.0) -> float:
    """Seconds to wait before the restart that follows ``crashes`` quick crashes in a row."""
    return float(min(base_s * 2 ** max(crashes - 1, 0), cap_s))


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    started_at: float
    crashes: int = 0  # quick crashes in a row
    restart_at: float | None = None  # set while waiting to restart


class Supervisor:
    def __init__(
        self,
        start: Callable[[str], subprocess.Popen[bytes]],
        out: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        base_s: float = 1.0,
        cap_s: float = 30.0,
        stable_s: float = 30.0,
    ) -> None:
        self._start = start
        self._out = out
        self._clock = clock
        self._base_s = base_s
        self._cap_s = cap_s
        self._stable_s = stable_s
        self._children: list[_Child] = []
        self.restarts = 0

    def add(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self._children.append(_Child(name, process, self._clock()))

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [child.process for child in self._children]

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(child.process for child in self._children if child.name == name)

    def tick(self) -> None:
        """Notice exits and start what is due; call it every fraction of a second."""
        now = self._clock()
        for child in self._children:
            if child.restart_at is None:
                code = child.process.poll()
                if code is None:
                    continue
                uptime = now - child.started_at
                child.crashes = 1 if uptime >= self._stable_s else child.crashes + 1
                delay = restart_delay(child.crashes, base_s=self._base_s, cap_s=self._cap_s)
                child.restart_at = now + delay
                self._say(
                    f"{child.name} exited with {code} after {uptime:.1f}s; restarting in {delay:g}s"
                )
            elif now >= child.restart_at:
                child.process = self._start(child.name)
                child.started_at = now
                child.restart_at = None
                self.restarts += 1
                self._say(f"{child.name} restarted (pid {child.process.pid})")

    def _say(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()
