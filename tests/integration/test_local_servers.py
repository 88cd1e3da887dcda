"""The local-server scripts are idempotent: a second start finds the running
server and starts nothing (only meaningful when the tests use the local servers)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.servers import ROOT


def _start(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "deploy" / "local" / script), "start"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _broker_processes(port: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "kafka.Kafka" in cmdline and f"server-{port}.properties" in cmdline:
            found.append(proc.name)
    return found


# With servers named by the environment, the local scripts are not in use and
# these two tests do not apply; `make test` on a fresh machine always runs them.
@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")), reason="external Kafka in use")
def test_a_second_kafka_start_leaves_one_broker(kafka_bootstrap: str) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    before = _broker_processes(port)
    done = _start("kafka.sh")
    assert done.returncode == 0, done.stderr
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in done.stdout
    assert _broker_processes(port) == before


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="external PostgreSQL in use")
def test_a_second_postgres_start_reuses_the_cluster(database_url: str) -> None:
    done = _start("postgres.sh")
    assert done.returncode == 0, done.stderr
    assert f"DATABASE_URL={database_url}" in done.stdout
    assert "already running" in done.stderr
