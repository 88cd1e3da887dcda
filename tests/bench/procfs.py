"""What a benchmark reads about a process from /proc: its CPU time and its memory."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of_command(command: str) -> float:
    """CPU used so far by every live process named `command` (such as all of a local
    PostgreSQL's processes). A process that exited meanwhile is no longer counted."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == command:
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue  # exited while we looked
    return total


def status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/PID/status, such as VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
