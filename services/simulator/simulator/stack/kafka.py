"""The broker for `make run`: the local Kafka script, and wiping the pipeline's topics (--fresh)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from shared.topics import Topics


class KafkaStartError(RuntimeError):
    """The local broker could not be started; the message carries the script's output."""


@dataclass(frozen=True, slots=True)
class Broker:
    bootstrap_servers: str
    started_here: bool  # only a broker this run started is stopped at the end
    local: bool = True  # the project's own local broker, not one named by KAFKA_BOOTSTRAP_SERVERS


async def _script(root: Path, action: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(root / "deploy" / "local" / "kafka.sh"),
        action,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=root,
    )
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        process.kill()  # not left starting a broker nobody will stop
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


def _bootstrap_from(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
            return line.split("=", 1)[1].strip()
    return None


async def ensure_local_kafka(root: Path) -> Broker:
    """The running local broker, or one started now (first run: resolves the jars, ~a minute)."""
    code, out, _ = await _script(root, "status")
    if code == 0 and (bootstrap := _bootstrap_from(out)):
        return Broker(bootstrap, started_here=False)
    try:
        code, out, err = await _script(root, "start")
    except asyncio.CancelledError:
        # Ctrl-C while the broker starts: the script dies with us, the broker (setsid) would not.
        await _script(root, "stop")
        raise
    bootstrap = _bootstrap_from(out)
    if code != 0 or not bootstrap:
        raise KafkaStartError(f"deploy/local/kafka.sh start failed (exit {code}):\n{err}{out}")
    return Broker(bootstrap, started_here=True)


async def stop_local_kafka(root: Path) -> None:
    await _script(root, "stop")


async def delete_topics(bootstrap_servers: str, topics: Topics, *, timeout_s: float = 60.0) -> None:
    """Delete the pipeline's topics and wait until the broker no longer lists them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lifecycle-run")
    await admin.start()
    try:
        present = set(await admin.list_topics()) & set(topics.all())
        if not present:
            return
        await admin.delete_topics(sorted(present))
        deadline = time.monotonic() + timeout_s
        # Deletion is asynchronous on the broker; re-creating too early would fail.
        while set(await admin.list_topics()) & present:
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"topics {sorted(present)} still listed {timeout_s:.0f}s after delete"
                )
            await asyncio.sleep(0.2)  # polling the broker's topic list, bounded by the deadline
    finally:
        await admin.close()
