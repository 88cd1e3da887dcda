"""Where the test servers come from, in order: an environment variable; a
testcontainers container when a Docker engine answers a ping; otherwise the
local server started by the project's own scripts (deploy/local/).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def docker_engine_answers() -> bool:
    # The `docker` command alone proves nothing: our machines have the client without an engine.
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001 - no engine, whatever the reason
        return False
    return True


def run_local_script(script: str, command: str, env: dict[str, str] | None = None) -> str:
    """Run `deploy/local/<script> <command>`; its stdout, or RuntimeError with its stderr."""
    done = subprocess.run(
        [str(ROOT / "deploy" / "local" / script), command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} {command} failed:\n{done.stderr}")
    return done.stdout


def _local(script: str, variable: str) -> str:
    stdout = run_local_script(script, "start")
    for line in stdout.splitlines():
        if line.startswith(variable + "="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"{script} printed no {variable}: {stdout!r}")


@contextlib.contextmanager
def kafka_server() -> Iterator[str]:
    if value := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield value
    elif docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        yield _local("kafka.sh", "KAFKA_BOOTSTRAP_SERVERS")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    if value := os.environ.get("DATABASE_URL"):
        if not value.startswith("postgresql"):
            raise RuntimeError(f"DATABASE_URL={value!r}: the tests need PostgreSQL")
        yield value
    elif docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        yield _local("postgres.sh", "DATABASE_URL")
