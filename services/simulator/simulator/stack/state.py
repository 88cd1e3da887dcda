"""Local state of `make run` under .local/run: the dev write key, where simulated time stands."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson


@dataclass(frozen=True, slots=True)
class NextRun:
    """Each run continues simulated time after the previous one, with new user ids, so the
    engine (which kept its state) never sees events older than what it already processed."""

    number: int
    start: datetime

    @property
    def id_prefix(self) -> str:
        return "" if self.number == 0 else f"r{self.number}-"


def is_new(state_dir: Path) -> bool:
    """No run has used this state folder yet."""
    return not (state_dir / "simulation.json").exists()


def wipe(state_dir: Path) -> None:
    if state_dir.exists():
        shutil.rmtree(state_dir)


def dev_write_key(state_dir: Path) -> str:
    """The write key of this state folder, created once (a dev key, kept in the folder)."""
    path = state_dir / "write-key"
    with contextlib.suppress(FileNotFoundError):
        if key := path.read_text().strip():
            return key
    key = "dev-" + secrets.token_urlsafe(16)
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    return key


def claim_next_run(state_dir: Path, *, default_start: datetime, days: int) -> NextRun:
    """Read where simulated time stands and move it past this run's days.

    Written before the run starts: a run killed half-way leaves a gap in
    simulated time (the engine sees time pass), never an overlap.
    """
    path = state_dir / "simulation.json"
    try:
        stored = orjson.loads(path.read_bytes())
        current = NextRun(int(stored["runs"]), datetime.fromisoformat(stored["next_start"]))
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError, ValueError):
        current = NextRun(0, default_start)
    following = {
        "runs": current.number + 1,
        "next_start": (current.start + timedelta(days=days + 1)).isoformat(),
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(following))
    tmp.replace(path)
    return current


def busy_ports(ports: dict[str, int]) -> list[str]:
    """The named ports something already listens on, e.g. another `make run`."""
    busy = []
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({name})")
    return busy
