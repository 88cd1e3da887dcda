"""The outbox's size as the brake of the whole engine.

When Kafka takes transitions slower than they are made (the broker is away, or a
mass of timers falls due), the engine holds back in two steps:

- the timer loop, while more than `timer_max_backlog` rows wait (default 20,000),
  until the relay brought the backlog under half of that;
- consumption, while more than `max_backlog` rows wait (default 200,000), until
  under half of it.

Timers yield first and early because the relay publishes each partition's rows in
order: an event's transition waits behind every timer transition queued before it.
With one brake for both at 200,000 rows, a flood of 600,000 due timers made events
wait 14 s at the p50 (2,000 events/s); held at 20,000, timers fire at the relay's
pace and events waited 1.9-2.5 s at the p50, 4-5 s at the p99 (one run each, with
priority.py). Only a backlog that events grow themselves (a slow or absent broker)
pauses consumption.

The backlog is judged by a loop of its own (`run`), and the loops it brakes read the
last verdict (`over`) without waiting. Counting it reads two rows per owned partition
(its queue head and its cursor), whatever the backlog: the count is exact and cheap
every second. (When the outbox was a table of waiting rows, a count of a full outbox
took 0.5 s, and was tracked from the writers' reports between counts.)
"""

from __future__ import annotations

import asyncio
import logging

from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0


class _Brake:
    """Held from a backlog over `limit` until one at or under half of it (hysteresis)."""

    def __init__(self, what: str, limit: int, *, level: int) -> None:
        self.what = what
        self.limit = limit
        self.level = level  # of the "holding back" line
        self.held = False

    def judge(self, backlog: int) -> bool:
        if not self.held and backlog > self.limit:
            self.held = True
            log.log(
                self.level, f"holding {self.what} back: outbox backlog", extra={"backlog": backlog}
            )
        elif self.held and backlog <= self.limit // 2:
            self.held = False
            log.info(f"{self.what} goes on: outbox backlog", extra={"backlog": backlog})
        return self.held


class OutboxPressure:
    def __init__(
        self,
        *,
        db: Database,
        ownership: Ownership,
        metrics: EngineMetrics,
        max_backlog: int,
        timer_max_backlog: int,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._db = db
        self._ownership = ownership
        self._metrics = metrics
        self._check_interval_s = check_interval_s
        self._consumption = _Brake("consumption", max_backlog, level=logging.WARNING)
        # routine while a mass of timers falls due: not a warning
        self._timers = _Brake("timers", timer_max_backlog, level=logging.INFO)

    @property
    def over(self) -> bool:
        """Consumption waits."""
        return self._consumption.held

    @property
    def timers_over(self) -> bool:
        """Timer rounds wait."""
        return self._timers.held

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._check_interval_s)  # the verdict's period

    async def refresh(self) -> bool:
        """Count the backlog and judge it; True while over the limit (consumption waits)."""
        async with self._db.read() as conn:
            backlog = await transition_store.outbox_backlog(conn, self._ownership.partitions)
        self._metrics.outbox_backlog.set(backlog)
        self._metrics.paused.set(int(self._consumption.judge(backlog)))
        self._metrics.timers_paused.set(int(self._timers.judge(backlog)))
        return self.over
