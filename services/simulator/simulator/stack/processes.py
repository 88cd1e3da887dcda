"""Child processes of `make run`: each in its own process group, stopped group by group.

A child's process group holds it and anything it spawns, so stopping the group
leaves nothing behind: SIGTERM, a deadline, then SIGKILL. Children also get
PR_SET_PDEATHSIG (Linux), so a `make run` killed with -9 takes its children
with it. The record of what was started (`processes.json` in the state folder)
is rewritten after each start; a later run stops any group it names that is
still alive, and tests use it to check that nothing outlived the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

PR_SET_PDEATHSIG = 1
ReadyCheck = Callable[[], Awaitable[bool]]


class StartError(RuntimeError):
    """A child did not become ready; the message carries the tail of its log."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]  # on top of this process's environment
    ready: ReadyCheck
    stop_order: int  # lower stops first


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


class Supervisor:
    def __init__(self, state_dir: Path, *, stop_timeout_s: float) -> None:
        self._state_dir = state_dir
        self._logs = state_dir / "logs"
        self._record = state_dir / "processes.json"
        self._stop_timeout_s = stop_timeout_s
        self.children: list[Child] = []

    async def start(self, spec: ChildSpec) -> Child:
        self._logs.mkdir(parents=True, exist_ok=True)
        log_path = self._logs / f"{spec.name}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env={**os.environ, **spec.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                process_group=0,  # its own group: the terminal's Ctrl-C reaches us, not it
                preexec_fn=_die_with_parent,
            )
        child = Child(spec, process, log_path)
        self.children.append(child)
        self._write_record()  # before waiting: a crash while waiting still names the child
        return child

    async def wait_ready(self, child: Child, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if child.process.returncode is not None:
                raise StartError(
                    f"{child.spec.name} exited with code {child.process.returncode} while "
                    f"starting; last lines of {child.log_path}:\n{tail(child.log_path)}"
                )
            if await child.spec.ready():
                return
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.spec.name} not ready within {timeout_s:.0f}s; last lines of "
                    f"{child.log_path}:\n{tail(child.log_path)}"
                )
            await asyncio.sleep(0.25)  # polling the child's readiness, bounded by the deadline

    async def stop_all(self) -> None:
        """Stop the children in stop order (same order: together), each group entirely."""
        for order in sorted({child.spec.stop_order for child in self.children}):
            batch = [child for child in self.children if child.spec.stop_order == order]
            await asyncio.gather(*(self._stop(child) for child in batch))

    def kill_all(self) -> None:
        """No more waiting (a second Ctrl-C): SIGKILL every group now."""
        for child in self.children:
            _signal_group(child.pid, signal.SIGKILL)

    async def _stop(self, child: Child) -> None:
        pgid = child.pid  # process_group=0 made the child the leader of a group of its own
        _signal_group(pgid, signal.SIGTERM)
        try:
            await asyncio.wait_for(child.process.wait(), timeout=self._stop_timeout_s)
        except TimeoutError:
            _signal_group(pgid, signal.SIGKILL)
            await child.process.wait()
        # Anything the child left in its group (a grandchild) goes too.
        _signal_group(pgid, signal.SIGKILL)

    def _write_record(self) -> None:
        entries = [
            {"name": c.spec.name, "pid": c.pid, "pgid": c.pid, "argv": list(c.spec.argv)}
            for c in self.children
        ]
        tmp = self._record.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
        tmp.replace(self._record)


def stop_leftovers(state_dir: Path) -> list[str]:
    """Kill the groups a previous run recorded that are still alive (it was killed with -9)."""
    record = state_dir / "processes.json"
    try:
        entries = orjson.loads(record.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return []
    stopped = []
    for entry in entries:
        pgid = int(entry["pgid"])
        if group_alive(pgid) and _same_command(int(entry["pid"]), entry["argv"]):
            _signal_group(pgid, signal.SIGKILL)
            stopped.append(f"{entry['name']} (pid {pgid})")
    return stopped


def _same_command(pid: int, argv: Sequence[str]) -> bool:
    """A recycled pid must not be killed: compare its command line with the recorded one."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return [part.decode(errors="replace") for part in cmdline if part] == list(argv)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
