"""A PostgreSQL server of one test's own, for tests that stop, freeze and restart it.

The shared server (conftest's `database_url`) must never be stopped: every other test
uses it. This one runs the binaries deploy/local/postgres.sh runs (the newest
/usr/lib/postgresql/*/bin), on a free port, with its data directory under a temporary
directory the context removes. As root (PostgreSQL refuses to run as root), its tools
run as the `postgres` user, as in the script.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

START_TIMEOUT_S = 60


def find_bindir() -> Path:
    """deploy/local/postgres.sh's find_bindir: the newest installed server version."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates = [
        p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()
    ]
    if not candidates:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
            "run deploy/local/postgres.sh start once to install them"
        )
    return max(candidates, key=version)


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass(frozen=True, slots=True)
class PrivatePostgres:
    home: Path
    port: int
    bindir: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*_as_owner(), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT_S + 30,
            cwd="/",  # the postgres user may not enter the caller's directory
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stderr}")

    def init(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )

    def start(self) -> None:
        """Start (or restart, on the same data); returns once it accepts connections
        (pg_ctl -w waits for that)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.home} -c max_connections=60 "
            "-c shared_buffers=32MB -c fsync=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.home / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )

    def stop(self) -> None:
        """A fast shutdown (clients disconnected, no crash recovery on the next start)."""
        self.thaw()
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            for pid in self._processes():  # a server that will not stop must not outlive us
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every backend and helper process: connections
        stay open, new ones are accepted by the kernel, and nothing ever answers."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._processes()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        """The postmaster first (stopped first, it forks no new backend), then its
        descendants."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return []
        postmaster = int(pid_file.read_text().splitlines()[0])
        found = [postmaster]
        for pid in found:  # grows as children are found
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.extend(int(child) for child in children.read_text().split())
        return found


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running server of its own; thawed, stopped and removed on exit."""
    home = Path(tempfile.mkdtemp(prefix="lifecycle-pg-"))
    server = PrivatePostgres(home=home, port=free_port(), bindir=find_bindir())
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)
