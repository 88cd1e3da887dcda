"""The events partitions this instance owns, and where consuming each one stands.

A rebalance changes ownership only when no batch, timer round or relay round is in
flight: each of those holds its lock for the duration, and revocation takes all three.
So a partition's work never straddles a hand-over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from stage_engine.store.offsets import StoredOffset


class Ownership:
    def __init__(self, *, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self._monotonic_s = monotonic_s
        self.consume_lock = asyncio.Lock()
        self.timer_lock = asyncio.Lock()
        self.relay_lock = asyncio.Lock()
        self._positions: dict[int, int] = {}
        self._max_event_times: dict[int, datetime | None] = {}
        # The highest received time applied since the partition was taken (wall clock).
        self._max_received_at: dict[int, datetime] = {}
        # For idle detection (event clock): when each partition's event time last moved,
        # and its consumer lag as last seen by the poll loop.
        self._moved_at_s: dict[int, float] = {}
        self._lag: dict[int, int] = {}
        # Bumped on every assignment: the relay re-checks what may already be published.
        self.generation = 0
        # Assigned to this instance by the group but not taken: reading their stored
        # offsets failed (rebalance.py retries). Not owned, so nothing reads them.
        self._not_taken: set[int] = set()

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._positions)

    @property
    def not_taken(self) -> frozenset[int]:
        """Partitions assigned to this instance that it could not take yet."""
        return frozenset(self._not_taken)

    def could_not_take(self, partitions: Collection[int]) -> None:
        self._not_taken.update(partitions)

    def position(self, partition: int) -> int | None:
        """The stored offset the next batch of `partition` starts from (None: not owned)."""
        return self._positions.get(partition)

    def max_event_time(self, partition: int) -> datetime | None:
        return self._max_event_times.get(partition)

    def watermark(self, partition: int, lateness: timedelta) -> datetime | None:
        """The event clock of `partition`: highest event time applied minus the lateness."""
        highest = self._max_event_times.get(partition)
        return None if highest is None else highest - lateness

    def note_lag(self, partition: int, lag: int) -> None:
        if partition in self._positions:
            self._lag[partition] = lag

    def lag(self, partition: int) -> int | None:
        """Records not yet applied, as the poll loop last saw (None: not measured yet)."""
        return self._lag.get(partition)

    def max_received_at(self, partition: int) -> datetime | None:
        return self._max_received_at.get(partition)

    def is_idle(self, partition: int, idle_after_s: float) -> bool:
        """Caught up (no lag) and no newer event time for `idle_after_s` seconds."""
        moved_at = self._moved_at_s.get(partition)
        return (
            self._lag.get(partition) == 0
            and moved_at is not None
            and self._monotonic_s() - moved_at >= idle_after_s
        )

    def highest_event_time(self) -> datetime | None:
        """The highest event time applied across the partitions this instance owns."""
        return max((t for t in self._max_event_times.values() if t is not None), default=None)

    @asynccontextmanager
    async def handover(self) -> AsyncIterator[None]:
        """Hold every worker's lock (in one fixed order) while ownership changes."""
        async with self.consume_lock, self.timer_lock, self.relay_lock:
            yield

    def take(self, stored: Mapping[int, StoredOffset]) -> None:
        for partition, offset in stored.items():
            self._positions[partition] = offset.next_offset
            self._max_event_times[partition] = offset.max_event_time
            self._moved_at_s[partition] = self._monotonic_s()
            self._lag.pop(partition, None)
            self._max_received_at.pop(partition, None)
            self._not_taken.discard(partition)
        self.generation += 1

    def release(self, partitions: Collection[int]) -> None:
        for partition in partitions:
            self._positions.pop(partition, None)
            self._max_event_times.pop(partition, None)
            self._moved_at_s.pop(partition, None)
            self._lag.pop(partition, None)
            self._max_received_at.pop(partition, None)
            self._not_taken.discard(partition)

    def advanced(
        self,
        partition: int,
        next_offset: int,
        max_event_time: datetime | None,
        max_received_at: datetime | None = None,
    ) -> None:
        """A batch of `partition` committed: its next batch starts at `next_offset`."""
        if partition not in self._positions:
            return
        self._positions[partition] = next_offset
        received = self._max_received_at.get(partition)
        if max_received_at is not None and (received is None or max_received_at > received):
            self._max_received_at[partition] = max_received_at
        current = self._max_event_times.get(partition)
        if max_event_time is not None and (current is None or max_event_time > current):
            self._max_event_times[partition] = max_event_time
            self._moved_at_s[partition] = self._monotonic_s()
