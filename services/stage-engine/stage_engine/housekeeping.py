"""Periodic chores: the gauges read from the database, and the dedup window's pruning.

The outbox backlog gauge is not here: the backpressure loop counts it every second.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store import dedup, queries
from stage_engine.store.database import Database
from stage_engine.timers import TimerTime

PRUNE_ROWS = 10_000


class Housekeeping:
    def __init__(
        self,
        *,
        db: Database,
        ownership: Ownership,
        time: TimerTime,
        metrics: EngineMetrics,
        dedup_window: timedelta,
        interval_s: float,
    ) -> None:
        self._db = db
        self._ownership = ownership
        self._time = time
        self._metrics = metrics
        self._dedup_window = dedup_window
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            await self.refresh_gauges()
            await self.prune_dedup()
            await asyncio.sleep(self._interval_s)  # the gauges' refresh period

    async def refresh_gauges(self) -> None:
        partitions = self._ownership.partitions
        due = 0
        async with self._db.read() as conn:
            per_stage = await queries.users_per_stage(conn)
            for partition in sorted(partitions):
                now = self._time.now_for(partition)
                if now is not None:
                    due += await queries.due_count(conn, partition, now)
        for stage, count in per_stage.items():
            self._metrics.users.labels(stage).set(count)
        self._metrics.due_backlog.set(due)

    async def prune_dedup(self) -> int:
        """Forget messageIds received before the window, for owned partitions."""
        pruned = 0
        for partition in sorted(self._ownership.partitions):
            now = self._time.now_for(partition)
            if now is None:
                continue
            horizon = now - self._dedup_window
            while True:
                # Killed right after a round: those ids are forgotten, as intended.
                async with self._db.write() as conn:
                    gone = await dedup.forget_older_than(
                        conn, partition=partition, horizon=horizon, limit=PRUNE_ROWS
                    )
                pruned += gone
                if gone < PRUNE_ROWS:
                    break
        return pruned
