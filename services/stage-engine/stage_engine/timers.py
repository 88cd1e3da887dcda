"""The due-timer loop: fires the due user rows of the partitions this instance owns.

Each round is one transaction over at most `batch_size` rows of one partition, picked
with the (partition, next_due_at) index and locked with FOR UPDATE SKIP LOCKED on
PostgreSQL, so two engines never fire one row; expire() moves next_due_at past `now`
in the same transaction that queues the transitions in the outbox.
Killed before a round's commit: nothing fired, the rows are still due and fire on the
next round (same transition ids). Killed after: fired once, the relay publishes them.
While the outbox holds more than the timers' limit (backpressure.py) no round starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import DBAPIError

from shared.clock import Clock
from stage_engine.backpressure import OutboxPressure
from stage_engine.lifecycle import LifecycleConfig, expire
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.priority import EventsFirst
from stage_engine.store import queries
from stage_engine.store import transitions as transition_store
from stage_engine.store import users as user_store
from stage_engine.store.database import Database, is_retryable
from stage_engine.store.quarantine import UnreadableRow, move_to_quarantine
from stage_engine.store.transitions import NewTransition
from stage_engine.store.users import LockedUser, encode_state

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# How long the timer loop keeps the timer lock (and so a rebalance waiting) at most,
# beyond the rounds in flight. Each pass ends with its workers' last rounds finishing
# one by one, the others idle. bench-stage's 1M-timer run, one run each: 15,072/s
# with 1 s passes, 16,277/s with 5 s. A rebalance or a stop may wait 5 s; the
# consumer's rebalance timeout (max.poll.interval.ms) is 5 minutes.
PASS_S = 5.0


class TimerTime:
    """`now` for a partition: the wall clock, or the partition's event-time watermark.

    Wall clock: a partition whose consumer lags (events received but not applied yet,
    say after an outage) fires its timers at the received time of the newest event it
    has applied, not at the wall clock: a user whose events wait in the backlog is not
    called silent for the time the engine was away. Caught up (lag 0), the wall clock.
    Lagging with nothing applied since the partition was taken: nothing fires yet.
    """

    def __init__(
        self,
        *,
        mode: Literal["wall", "event"],
        clock: Clock,
        ownership: Ownership,
        lateness: timedelta,
        idle_after_s: float = 0.0,
    ) -> None:
        self._mode = mode
        self._clock = clock
        self._ownership = ownership
        self._lateness = lateness
        self._idle_after_s = idle_after_s

    def now_for(self, partition: int) -> datetime | None:
        if self._mode == "wall":
            return self._wall_now_for(partition)
        own = self._ownership.watermark(partition, self._lateness)
        if not self._idle_after_s or not self._ownership.is_idle(partition, self._idle_after_s):
            return own
        # An idle, caught-up partition follows the owned partitions' highest event time,
        # so the last timers of a finished import fire. Off by default: it trades the
        # exact replay of per-partition event time for timers that do not wait forever.
        highest = self._ownership.highest_event_time()
        if highest is None:
            return own
        followed = highest - self._lateness
        return followed if own is None or followed > own else own

    def _wall_now_for(self, partition: int) -> datetime | None:
        now = self._clock.now()
        if self._ownership.lag(partition) == 0:
            return now
        received = self._ownership.max_received_at(partition)
        return None if received is None else min(now, received)


class TimerLoop:
    def __init__(
        self,
        *,
        db: Database,
        ownership: Ownership,
        time: TimerTime,
        clock: Clock,
        metrics: EngineMetrics,
        config: Callable[[], LifecycleConfig],
        batch_size: int,
        parallel: int,
        pressure: OutboxPressure,
        interval_s: float,
        on_fired: Callable[[], None],
        events_first: EventsFirst,
    ) -> None:
        self._db = db
        self._ownership = ownership
        self._time = time
        self._clock = clock
        self._metrics = metrics
        self._config = config
        self._batch_size = batch_size
        self._parallel = parallel
        self._pressure = pressure
        self._interval_s = interval_s
        self._on_fired = on_fired
        self._events_first = events_first
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a round soon (a batch moved an event-time watermark)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._pressure.timers_over:
                await self.fire_all()
            # the interval is the wall clock's tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
            self._wake.clear()

    async def fire_all(self) -> int:
        """Fire every due row of every owned partition; how many rows fired."""
        total = 0
        due = deque(sorted(await self._partitions_due()))
        while due and not self._pressure.timers_over:
            total += await self._fire_for_a_while(due)
        return total

    async def _partitions_due(self) -> set[int]:
        # A cheap read first: most rounds find nothing due, and open no write transaction.
        nows = {p: self._time.now_for(p) for p in self._ownership.partitions}
        known = {p: now for p, now in nows.items() if now is not None}
        async with self._db.read() as conn:
            return await queries.partitions_with_due_rows(conn, known)

    async def _fire_for_a_while(self, due: deque[int]) -> int:
        """Fire partitions from `due` for up to PASS_S; how many rows fired.

        `parallel` workers each take the next partition as soon as their last round is
        done, each round in its own transaction: one round's Python work overlaps the
        others' database work and commits. (Rounds started together in lock-step did
        their Python work, and then waited for the database, at the same moments.) A
        partition that filled its batch may have more due rows: it goes to the back of
        the queue. The timer lock is let go between passes, so a rebalance waits for
        one pass at most.
        """
        fired = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PASS_S

        async def worker() -> None:
            nonlocal fired
            while due and loop.time() < deadline:
                await self._events_first.turn()
                partition = due.popleft() if due else None
                if partition is None or partition not in self._ownership.partitions:
                    continue  # taken by another worker, or revoked: its new owner fires it
                count = await self._fire_retrying(partition)
                if count:
                    fired += count
                    self._metrics.timers_fired.inc(count)
                    self._on_fired()
                if count >= self._batch_size:
                    due.append(partition)

        async with self._ownership.timer_lock, asyncio.TaskGroup() as workers:
            for _ in range(self._parallel):
                workers.create_task(worker())
        return fired

    async def _fire_retrying(self, partition: int) -> int:
        now = self._time.now_for(partition)
        if now is None:
            return 0  # event clock without events yet
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._fire(partition, now)
            except DBAPIError as exc:
                if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                    raise
                self._metrics.retried.inc()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fire(self, partition: int, now: datetime) -> int:
        config = self._config()
        wall = self._clock.now()
        quarantined: list[UnreadableRow] = []
        async with self._db.write() as conn:
            due = await user_store.lock_due_users(
                conn,
                self._db,
                partition=partition,
                now=now,
                limit=self._batch_size,
                wall_now=wall,
                quarantined=quarantined,
            )
            if not due:
                self._metrics.quarantined.inc(len(quarantined))
                return 0
            fired: list[LockedUser] = []
            emitted: list[NewTransition] = []
            refused: list[UnreadableRow] = []
            for locked in due:
                partition = locked.partition
                try:
                    state, transitions = expire(locked.state, now, config)
                except (ArithmeticError, ValueError) as exc:  # e.g. a due date past year 9999
                    refused.append(_refused(locked, exc))
                    continue
                fired.append(LockedUser(state, partition, locked.row))
                emitted.extend([NewTransition(t, partition) for t in transitions])
            # A row the rules cannot expire would be due, and fail, in every round.
            await move_to_quarantine(conn, refused, now=wall)
            quarantined += refused
            # On PostgreSQL each write below is one statement for the whole round.
            await user_store.update_fired_users(conn, self._db, fired, now=wall)
            # Killed here: the transaction rolls back, the rows are still due and locked by
            # nobody; the next round (or the partition's next owner) fires them, same ids.
            await transition_store.record_transitions(conn, self._db, emitted, now=wall)
            # Killed here: still uncommitted, the same as above.
        # Killed here: committed. The rows are no longer due (never fired again) and the
        # transitions wait in the outbox, which the relay publishes.
        self._metrics.quarantined.inc(len(quarantined))
        # One labelled counter call per (kind, stage), not per transition.
        counts = Counter((t.transition.kind, t.transition.to_stage) for t in emitted)
        for (kind, to_stage), count in counts.items():
            self._metrics.transitions.labels(kind.value, to_stage.value).inc(count)
        return len(due)


def _refused(locked: LockedUser, exc: BaseException) -> UnreadableRow:
    state = locked.state
    error = f"expire failed: {type(exc).__name__}: {exc}"
    return UnreadableRow(state.user_id, locked.partition, encode_state(state), error)
