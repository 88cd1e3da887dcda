"""Bounded shutdown: a client that does not close in time is logged and left behind.

A process asked to stop must exit, or its supervisor kills it anyway; an unbounded
`await client.stop()` (a broker gone mid-request, a rebalance in progress) would turn
a clean stop into a hang. Everything the services write is settled before they stop
their clients, so leaving a stuck client behind loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CLIENT_STOP_TIMEOUT_S = 15.0


async def stop_within(
    what: str, stop: Callable[[], Awaitable[object]], *, timeout_s: float = CLIENT_STOP_TIMEOUT_S
) -> bool:
    """Await `stop()` for at most `timeout_s`; return whether it finished."""
    try:
        async with asyncio.timeout(timeout_s):
            await stop()
    except TimeoutError:
        log.error("%s did not stop within %.0f s; leaving it behind", what, timeout_s)  # noqa: TRY400 - a timeout, its traceback says nothing
        return False
    return True
