"""Integration tests: when one is stuck, say where before the suite's timeout kills it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

log = logging.getLogger("tests.stuck")

# Before pytest-timeout's 300 s, which reports only the event loop's select().
STUCK_AFTER_S = 240.0


@pytest.fixture(autouse=True)
async def _report_stuck_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    handle = loop.call_later(STUCK_AFTER_S, _log_tasks, request.node.nodeid)
    yield
    handle.cancel()


def _log_tasks(test: str) -> None:
    lines = [f"{test} still running after {STUCK_AFTER_S:.0f} s; its tasks:"]
    for task in asyncio.all_tasks():
        lines.append(f"  task {task.get_name()}:")
        lines.extend(f"    {where}" for where in _awaiting(task.get_coro()))
    log.error("\n".join(lines))


def _awaiting(coro: object) -> list[str]:
    """Where the coroutine is suspended, outermost first: Task.get_stack stops at the top."""
    chain: list[str] = []
    while coro is not None and len(chain) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is None:
            chain.append(repr(coro)[:200])  # a future or a finished coroutine
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return chain
