"""The outbox's size as the brake of the whole engine.

When Kafka takes transitions slower than they are made (the broker is away, or a
mass of timers falls due), consumption and the timer loop both hold back while more
than `max_backlog` rows wait, and go on once the relay brought it under half of that.

The backlog is judged by a loop of its own (`run`), and the loops it brakes read the
last verdict (`over`) without waiting. Between counts it is tracked: after each commit
the engine's writers report the rows they queued (new ids only), and the relay the
rows it published or recovery dropped. The outbox is counted again every `recount_s`
and whenever the owned partitions change, which corrects what tracking gets wrong: a
merge queues rows for its user's partition, which another instance may own (counted
here, relayed there), or another instance's merge queues rows for ours; a commit that
lands while a count runs may be counted twice. A count over a full outbox scans it:
70 ms for 200,000 rows, 0.5 s once each row carried its body, which the poll and timer
loops used to wait for each second.
"""

from __future__ import annotations

import asyncio
import logging
import time

from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
RECOUNT_S = 30.0


class OutboxPressure:
    def __init__(
        self,
        *,
        db: Database,
        ownership: Ownership,
        metrics: EngineMetrics,
        max_backlog: int,
        check_interval_s: float = CHECK_INTERVAL_S,
        recount_s: float = RECOUNT_S,
    ) -> None:
        self._db = db
        self._ownership = ownership
        self._metrics = metrics
        self._max_backlog = max_backlog
        self._check_interval_s = check_interval_s
        self._recount_s = recount_s
        self._backlog = 0
        self._counted_generation: int | None = None
        self._counted_at = float("-inf")
        # True from a backlog over the limit until one under half of it.
        self.over = False

    def queued(self, rows: int) -> None:
        """Rows a committed batch or timer round added to the outbox."""
        self._backlog += rows

    def relayed(self, rows: int) -> None:
        """Rows a committed relay round took out of the outbox."""
        self._backlog = max(0, self._backlog - rows)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._check_interval_s)  # the verdict's period

    async def refresh(self) -> bool:
        """Judge the backlog, counted again when a count is due; True while over the limit."""
        stale = time.monotonic() - self._counted_at >= self._recount_s
        if stale or self._counted_generation != self._ownership.generation:
            await self._recount()
        backlog = self._backlog
        self._metrics.outbox_backlog.set(backlog)
        if not self.over and backlog > self._max_backlog:
            self.over = True
            log.warning("holding back: outbox backlog", extra={"backlog": backlog})
        elif self.over and backlog <= self._max_backlog // 2:
            self.over = False
            log.info("going on: outbox backlog", extra={"backlog": backlog})
        self._metrics.paused.set(1 if self.over else 0)
        return self.over

    async def _recount(self) -> None:
        generation = self._ownership.generation
        tracked_before = self._backlog
        async with self._db.read() as conn:
            counted = await transition_store.outbox_backlog(conn, self._ownership.partitions)
        # Commits reported while the count ran are added back; one the count's snapshot
        # saw as well is counted twice until the next count (a round's rows at most).
        self._backlog = counted + (self._backlog - tracked_before)
        self._counted_generation = generation
        self._counted_at = time.monotonic()
