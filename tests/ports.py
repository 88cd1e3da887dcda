"""A free loopback port for a server a test or benchmark starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS just had free on 127.0.0.1 (servers bind it moments later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
