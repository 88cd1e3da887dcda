"""Event batches go before timer rounds on the engine's one event loop.

Timer rounds are Python-heavy (the rules run ~15 µs a row, 2,000 rows a round) and
several run at once. asyncio gives every ready task its turn in order, so each await
of an event batch (a dozen statements) can wait for every round's slice of Python.

So a round starts only while no batch is being applied. A round never waits for a
batch once its transaction is open: the batch may be waiting for the round's row
locks. (Rounds that also yielded every 200-500 rows of rules gave events a little
more (below) but cost the timer rate 2% over four pairs of 1M-timer runs, 1-5 µs of
engine CPU a timer: not kept.)

Measured (one run each, not a committed benchmark): 2,000 events/s while 600,000
timers fell due, timers held at 20,000 waiting transitions (backpressure.py): event
to transition p50/p99 2.85/5.6 s without this gate, 2.6/5.3 s with it; with in-round
yields too, every 200 rows 1.9/4.2 s, every 500 rows 2.5/5.1 s. Most of what remains
is the wait behind the timers' transitions in the outbox, which the relay publishes
in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class EventsFirst:
    def __init__(self) -> None:
        self._no_batch = asyncio.Event()
        self._no_batch.set()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Held while the poll loop applies a batch (one at a time)."""
        self._no_batch.clear()
        try:
            yield
        finally:
            self._no_batch.set()

    async def turn(self) -> None:
        """Return once no batch is being applied."""
        await self._no_batch.wait()
