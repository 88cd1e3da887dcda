"""Run a service or a command as a real child process, in its own process group, for a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

import httpx

from tests.ports import free_port
from tests.servers import ROOT
from tests.waiting import eventually


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


async def answers_ready(url: str) -> bool:
    """GET `url` answers 200 (False while nothing listens)."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def running_ingest(
    tmp_path: Path, *, kafka: str, events_topic: str, write_key: str
) -> AsyncIterator[str]:
    """`python -m ingest` on a free port, writing to the test's topic; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "TOPIC_EVENTS": events_topic,
        "INGEST_PORT": str(port),
        "INGEST_WRITE_KEYS": f"{write_key}:history",
        "HTTP_HOST": "127.0.0.1",
    }
    log = (tmp_path / "ingest.log").open("wb")
    process = spawn([sys.executable, "-m", "ingest"], env=env, output=log)
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(
            lambda: answers_ready(f"{url}/readyz"),
            timeout_s=60,
            interval_s=0.2,
            what="ingest ready",
        )
        yield url
    finally:
        kill_group(process)
        log.close()


def spawn(
    argv: list[str], *, env: Mapping[str, str], output: IO[bytes] | int
) -> subprocess.Popen[bytes]:
    """A child in a process group of its own, so the test can signal or kill all of it."""
    return subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, process_group=0
    )


def lifecycle_command(*args: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """The `lifecycle` CLI as a child process (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )


async def finished(process: subprocess.Popen[bytes], *, timeout_s: float) -> tuple[int, str, str]:
    """Wait (off the event loop) for the process; its exit code, stdout and stderr."""
    out, err = await asyncio.to_thread(process.communicate, timeout=timeout_s)
    return process.returncode, out.decode(), err.decode()
