"""The outbox's size as the brake of the whole engine.

When Kafka takes transitions slower than they are made (the broker is away, or a
mass of timers falls due), consumption and the timer loop both hold back while more
than `max_backlog` rows wait, and go on once the relay brought it under half of that.

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
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._db = db
        self._ownership = ownership
        self._metrics = metrics
        self._max_backlog = max_backlog
        self._check_interval_s = check_interval_s
        # True from a backlog over the limit until one under half of it.
        self.over = False

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._check_interval_s)  # the verdict's period

    async def refresh(self) -> bool:
        """Count the backlog and judge it; True while over the limit."""
        async with self._db.read() as conn:
            backlog = await transition_store.outbox_backlog(conn, self._ownership.partitions)
        self._metrics.outbox_backlog.set(backlog)
        if not self.over and backlog > self._max_backlog:
            self.over = True
            log.warning("holding back: outbox backlog", extra={"backlog": backlog})
        elif self.over and backlog <= self._max_backlog // 2:
            self.over = False
            log.info("going on: outbox backlog", extra={"backlog": backlog})
        self._metrics.paused.set(1 if self.over else 0)
        return self.over
