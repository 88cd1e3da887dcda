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
        self._max_backlog = max_backlog
        self._timer_max_backlog = timer_max_backlog
        self._check_interval_s = check_interval_s
        # True from a backlog over the limit until one under half of it: consumption waits.
        self.over = False
        # True from a backlog over the timers' limit until one under half of it.
        self.timers_over = False

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._check_interval_s)  # the verdict's period

    async def refresh(self) -> bool:
        """Count the backlog and judge it; True while over the limit (consumption waits)."""
        async with self._db.read() as conn:
            backlog = await transition_store.outbox_backlog(conn, self._ownership.partitions)
        self._metrics.outbox_backlog.set(backlog)
        if not self.over and backlog > self._max_backlog:
            self.over = True
            log.warning("holding consumption back: outbox backlog", extra={"backlog": backlog})
        elif self.over and backlog <= self._max_backlog // 2:
            self.over = False
            log.info("consumption goes on: outbox backlog", extra={"backlog": backlog})
        if not self.timers_over and backlog > self._timer_max_backlog:
            self.timers_over = True
            log.info("holding timers back: outbox backlog", extra={"backlog": backlog})
        elif self.timers_over and backlog <= self._timer_max_backlog // 2:
            self.timers_over = False
            log.info("timers go on: outbox backlog", extra={"backlog": backlog})
        self._metrics.paused.set(1 if self.over else 0)
        self._metrics.timers_paused.set(1 if self.timers_over else 0)
        return self.over
