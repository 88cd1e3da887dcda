"""A Kafka broker of one test's own, for tests that kill and restart it.

The shared broker (conftest's `kafka_bootstrap`) must never be stopped: every other
test uses it. This one runs from the same script and jar cache on free ports, with its
own data directory, which the context removes when it exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from tests.ports import free_port
from tests.servers import ROOT, run_local_script

HOME = ROOT / ".local" / "kafka"


@dataclass(frozen=True, slots=True)
class PrivateKafka:
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return os.environ | {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_HEAP": "256m",
        }

    def _script(self, command: str) -> None:
        run_local_script("kafka.sh", command, self._env())

    def start(self) -> None:
        """Start (or restart, on the same data) and return once it answers metadata."""
        self._script("start")

    def kill(self) -> None:
        """SIGKILL, as a crash: no controlled shutdown, no flush beyond the OS's."""
        pid = int((HOME / f"kafka-{self.port}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # not our child (setsid), so usually refused

    def remove(self) -> None:
        self._script("stop")
        shutil.rmtree(HOME / f"data-{self.port}", ignore_errors=True)
        for name in (f"server-{self.port}.properties", f"kafka-{self.port}.log"):
            (HOME / name).unlink(missing_ok=True)


@contextlib.contextmanager
def private_kafka() -> Iterator[PrivateKafka]:
    broker = PrivateKafka(port=free_port(), controller_port=free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.remove()
