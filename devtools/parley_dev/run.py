"""``./dev run``: broker, Postgres and every Parley service on this machine, until Ctrl-C.

Honours KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when they are set (servers already running);
otherwise starts Tansu and PostgreSQL under ``.parley/``. When TWILIO_ACCOUNT_SID is unset the
local Twilio sandbox is used, so a newcomer needs no account and no credentials.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from parley_dev.email_sandbox import EmailSandbox
from parley_dev.infra import Postgres, Tansu, postgres_data_root, stop_pid, wait_for_port
from parley_dev.supervisor import Supervisor
from parley_dev.telnyx_sandbox import TelnyxSandbox

PROJECT = Path(__file__).resolve().parents[2]
SANDBOX_ACCOUNT_SID = "AC" + "0" * 31 + "1"
SANDBOX_AUTH_TOKEN = "sandbox-auth-token-not-a-secret"
SANDBOX_API_TOKEN = "dev-api-token"


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    port_env: str
    port: int


SANDBOX = Service("sandbox", "parley_dev.sandbox", "SANDBOX_PORT", 8090)
TELNYX_SANDBOX = Service("telnyx", "parley_dev.telnyx_sandbox", "TELNYX_SANDBOX_PORT", 8091)
SERVICES = [
    Service("gateway", "parley_gateway", "GATEWAY_PORT", 8080),
    Service("conversation", "parley_conversation", "CONVERSATION_PORT", 8081),
    Service("ai", "parley_ai", "AI_PORT", 8082),
    Service("sender", "parley_sender", "SENDER_PORT", 8083),
    Service("analytics", "parley_analytics", "ANALYTICS_PORT", 8084),
]


def base_environment(state: Path, kafka: str, database: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("KAFKA_BOOTSTRAP_SERVERS", kafka)
    env.setdefault("DATABASE_URL", database)
    env.setdefault("PUBLIC_BASE_URL", "http://127.0.0.1:8080")
    env.setdefault("API_TOKEN", SANDBOX_API_TOKEN)
    # Local groups restart often; a short session timeout keeps rejoining quick.
    env.setdefault("KAFKA_SESSION_TIMEOUT_MS", "2000")
    env.setdefault("KAFKA_HEARTBEAT_INTERVAL_MS", "500")
    if not env.get("TWILIO_ACCOUNT_SID"):
        env["TWILIO_ACCOUNT_SID"] = SANDBOX_ACCOUNT_SID
        env["TWILIO_AUTH_TOKEN"] = SANDBOX_AUTH_TOKEN
        env["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{SANDBOX.port}"
        env["PARLEY_SANDBOX"] = "1"
        env["TWILIO_MEDIA_HOSTS"] = "127.0.0.1"  # the sandbox serves media as Twilio does
        for name, value in sandbox_keys().items():
            env.setdefault(name, value)
    env["PARLEY_STATE_DIR"] = str(state)
    return env


def sandbox_keys() -> dict[str, str]:
    """Keys of this run's Telnyx and email sandboxes, and their public halves for the
    gateway (so ``./dev chat --telnyx``, ``/call`` and ``/email`` work with no account)."""
    telnyx = TelnyxSandbox(api_key="KEY-dev-sandbox")
    email = EmailSandbox()
    return {
        "TELNYX_SANDBOX_SEED": base64.b64encode(bytes(telnyx.signing_key)).decode(),
        "TELNYX_PUBLIC_KEY": telnyx.public_key,
        "TELNYX_API_KEY": telnyx.api_key,
        "TELNYX_API_BASE_URL": f"http://127.0.0.1:{TELNYX_SANDBOX.port}/v2",
        "EMAIL_SANDBOX_KEY": email.private_pem,
        "EMAIL_WEBHOOK_PUBLIC_KEY": email.public_key,
    }


def port_of(service: Service, env: dict[str, str]) -> int:
    return int(env.get(service.port_env, service.port))


def launch(
    service: Service,
    env: dict[str, str],
    logs: Path,
    *,
    wait: bool = True,
    log_name: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start one service as its own process (logging to ``logs``); ``wait`` for its port."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{log_name or service.name}.log"
    port = port_of(service, env)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", service.module],
            env={**env, service.port_env: str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if wait:
        wait_for_port(port, 30, process, log)
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=PROJECT / ".parley")
    args = parser.parse_args(argv)
    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(exist_ok=True)

    broker: Tansu | None = None
    postgres: Postgres | None = None
    supervisor: Supervisor | None = None
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            broker = Tansu(state / "tansu", port=9092)
            kafka = broker.start()
            print(f"broker     Tansu on {kafka} (in memory: history is kept until it stops)")
        database = os.environ.get("DATABASE_URL")
        if not database:
            postgres = Postgres(postgres_data_root(state), port=5433)
            # Projections are built from the log: with a broker that forgets its log at
            # stop, the database starts empty too, so the two always agree.
            database = postgres.start(fresh_database=broker is not None)
            print(
                f"postgres   {database}"
                + (" (fresh, like the broker's log)" if broker is not None else "")
            )
        env = base_environment(state, kafka, database)
        sandbox = env.get("PARLEY_SANDBOX") == "1"
        if not env.get("OPENAI_API_KEY") and env.get("AI_OFFLINE", "") in ("", "0"):
            if not sandbox:
                # Real Twilio and no model: customers would get the offline stand-in.
                print(
                    "OPENAI_API_KEY is unset while TWILIO_ACCOUNT_SID is set: set the key, or "
                    "AI_OFFLINE=1 to send the offline stand-in to real phones on purpose",
                    file=sys.stderr,
                )
                return 2
            env["AI_OFFLINE"] = "1"
        launched = [SANDBOX, TELNYX_SANDBOX, *SERVICES] if sandbox else SERVICES
        by_name = {service.name: service for service in launched}
        supervisor = Supervisor(
            lambda name: launch(by_name[name], env, state / "logs", wait=False), sys.stderr
        )
        for service in launched:
            supervisor.add(service.name, launch(service, env, state / "logs"))
            print(
                f"{service.name:<10} http://127.0.0.1:{port_of(service, env)}  (log: "
                f"{state / 'logs' / (service.name + '.log')})"
            )
        if env.get("AI_OFFLINE") == "1":
            print("ai         OPENAI_API_KEY is unset: a marked offline responder answers")
        if sandbox:
            print(
                "twilio     local sandbox (TWILIO_ACCOUNT_SID unset); talk to Parley with:"
                "  ./dev chat   (or ./dev chat --telnyx; /call and /email in a chat)"
            )
        print(
            f"API        curl -H 'Authorization: Bearer {env['API_TOKEN']}' "
            "http://127.0.0.1:8081/v1/conversations"
        )
        print("Parley is running; a service that crashes is restarted. Ctrl-C stops everything.")
        while not stopping:
            supervisor.tick()
            time.sleep(0.5)
        return 0
    finally:
        for process in reversed(supervisor.processes() if supervisor else []):
            stop_pid(process.pid)
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped.")


if __name__ == "__main__":
    raise SystemExit(main())
