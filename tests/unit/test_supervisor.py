"""``./dev run``'s supervisor, with real child processes and a hand-turned clock."""

from __future__ import annotations

import io
import subprocess
import sys

from parley_dev.supervisor import Supervisor, restart_delay


def test_delays_double_and_stop_at_the_cap() -> None:
    assert [restart_delay(n, base_s=1, cap_s=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def crashing() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])


def test_a_crashed_service_is_restarted_with_backoff_and_the_others_keep_running() -> None:
    clock = Clock()
    out = io.StringIO()
    started: list[str] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        started.append(name)
        return crashing()

    steady = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor(start, out, clock=clock, base_s=1, cap_s=8, stable_s=30)
    supervisor.add("steady", steady)
    supervisor.add("flaky", crashing())
    try:
        delays = []
        for _ in range(4):
            flaky = supervisor.processes()[1]
            flaky.wait()
            supervisor.tick()  # notices the exit
            line = out.getvalue().splitlines()[-1]
            assert line.startswith("flaky exited with 3 after")
            delays.append(float(line.rsplit("restarting in ", 1)[1].rstrip("s")))
            supervisor.tick()  # not due yet
            assert supervisor.processes()[1] is flaky
            clock.now += delays[-1]
            supervisor.tick()  # due: started again
            assert supervisor.processes()[1] is not flaky
        assert delays == [1, 2, 4, 8]
        assert started == ["flaky"] * 4
        assert steady.poll() is None and supervisor.processes()[0] is steady

        # Up for longer than stable_s before crashing: the backoff starts over.
        clock.now += 31
        supervisor.processes()[1].wait()
        supervisor.tick()
        assert out.getvalue().splitlines()[-1].endswith("restarting in 1s")
    finally:
        for process in supervisor.processes():
            process.kill()
            process.wait()
