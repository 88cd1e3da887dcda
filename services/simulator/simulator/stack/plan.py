"""What `make run` starts, with which settings: the dev sinks and the three services."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import httpx

from simulator.settings import RunSettings
from simulator.stack.processes import ChildSpec, ReadyCheck

LOOPBACK = "127.0.0.1"
# The simulator sends each simulated hour in time order, so a few simulated
# minutes of lateness cover any reordering between the batches of one step.
IDLE_PARTITION_SECONDS = 5
ALLOWED_LATENESS_SECONDS = 600


@dataclass(frozen=True, slots=True)
class StackPaths:
    state_dir: Path

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    @property
    def sink_log(self) -> Path:
        return self.state_dir / "sink-requests.jsonl"

    @property
    def report(self) -> Path:
        return self.state_dir / "report.json"

    def sqlite_url(self, name: str) -> str:
        # One file per service: two processes writing one SQLite file would contend for its lock.
        return f"sqlite+aiosqlite:///{(self.state_dir / f'{name}.db').resolve()}"


def http_ready(url: str) -> ReadyCheck:
    async def check() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    return check


def tcp_ready(host: str, port: int) -> ReadyCheck:
    async def check() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=2.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return check


def plan_stack(
    settings: RunSettings,
    *,
    paths: StackPaths,
    python: str,
    kafka_bootstrap: str,
    write_key: str,
    database_url: str | None,
) -> list[ChildSpec]:
    """The children in start order. `database_url` None = one embedded SQLite file per service."""
    sink = f"http://{LOOPBACK}:{settings.run_sink_port}"
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "HTTP_HOST": LOOPBACK}
    return [
        ChildSpec(
            name="dev-smtp",
            argv=(
                python,
                "-m",
                "notifier.devsmtp",
                "--host",
                LOOPBACK,
                "--port",
                str(settings.run_smtp_port),
                "--maildir",
                str(paths.mail_dir),
            ),
            env={},
            ready=tcp_ready(LOOPBACK, settings.run_smtp_port),
            stop_order=3,
        ),
        ChildSpec(
            name="dev-sink",
            argv=(
                python,
                "-m",
                "notifier.devsink",
                "--host",
                LOOPBACK,
                "--port",
                str(settings.run_sink_port),
                "--log",
                str(paths.sink_log),
            ),
            env={},
            ready=tcp_ready(LOOPBACK, settings.run_sink_port),
            stop_order=3,
        ),
        ChildSpec(
            name="ingest",
            argv=(python, "-m", "ingest"),
            env={
                **common,
                "INGEST_PORT": str(settings.ingest_port),
                "INGEST_WRITE_KEYS": f"{write_key}:simulator",
            },
            ready=http_ready(f"http://{LOOPBACK}:{settings.ingest_port}/readyz"),
            stop_order=0,
        ),
        ChildSpec(
            name="stage-engine",
            argv=(python, "-m", "stage_engine"),
            env={
                **common,
                "STAGE_ENGINE_PORT": str(settings.stage_engine_port),
                "DATABASE_URL": database_url or paths.sqlite_url("stage-engine"),
                "STAGE_CLOCK": "event",
                "STAGE_ALLOWED_LATENESS_SECONDS": str(ALLOWED_LATENESS_SECONDS),
                # After an import or simulation ends, partitions that saw no late
                # events still fire their timers (see stage_engine/settings.py).
                "STAGE_IDLE_PARTITION_SECONDS": str(IDLE_PARTITION_SECONDS),
            },
            ready=http_ready(f"http://{LOOPBACK}:{settings.stage_engine_port}/readyz"),
            stop_order=1,
        ),
        ChildSpec(
            name="notifier",
            argv=(python, "-m", "notifier"),
            env={
                **common,
                "NOTIFIER_PORT": str(settings.notifier_port),
                "DATABASE_URL": database_url or paths.sqlite_url("notifier"),
                "NOTIFIER_CLOCK": "event",
                "NOTIFIER_SMTP_HOST": LOOPBACK,
                "NOTIFIER_SMTP_PORT": str(settings.run_smtp_port),
                "NOTIFIER_SMS_URL": f"{sink}/sms",
                "NOTIFIER_PUSH_URL": f"{sink}/push",
                "NOTIFIER_CALL_URL": f"{sink}/call",
                "NOTIFIER_WEBHOOK_URL": f"{sink}/webhook",
            },
            ready=http_ready(f"http://{LOOPBACK}:{settings.notifier_port}/readyz"),
            stop_order=2,
        ),
    ]
