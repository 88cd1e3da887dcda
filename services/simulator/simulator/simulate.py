"""Run the world against the real pipeline: simulated time advances in steps, paced to the wall.

Each step sends, in time order, the calls that fall in it, through ingest's
`/v1/batch`; then simulated time moves on. With the defaults one simulated day
takes one wall second, so 60 days pass in about a minute; the stage engine's
event clock follows the event times and fires its timers as simulated days
go by. What users received (the notifications topic) feeds back into the world
as answers scheduled a few simulated hours later.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from simulator.calls import Call
from simulator.ingest_client import BatchSender
from simulator.model import Notice, World
from simulator.stats import LiveStats

OnUpdate = Callable[[LiveStats], None]


class Watch(Protocol):
    """What users received (simulator.watch.TopicWatch reads it from the topics)."""

    notices: deque[Notice]

    async def poll(self, timeout_ms: int = 200) -> int: ...


class Probe(Protocol):
    """The services' own figures (simulator.probes.ServiceProbe asks their HTTP APIs)."""

    async def refresh(self, stats: LiveStats, *, with_recall: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class Pacing:
    seconds_per_day: float = 1.0
    steps_per_day: int = 24
    batch_size: int = 250
    refresh_seconds: float = 1.0
    drain_seconds: float = 30.0  # at most this long waiting for the pipeline to settle at the end
    settle_seconds: float = 4.0  # figures unchanged this long = settled
    # Backpressure: before each simulated day, wait while the engine or the notifier is
    # more than this many simulated days behind (0 = never wait), so that answers to
    # messages still fall in the recall window; at most `max_hold_days_of_wall` times a
    # day's wall time per day, so a quiet population (no transitions) cannot stall it.
    max_lag_days: float = 1.0
    max_hold_days_of_wall: float = 10.0


class Simulation:
    def __init__(
        self,
        world: World,
        *,
        ingest: BatchSender,
        watch: Watch,
        probe: Probe,
        stats: LiveStats,
        pacing: Pacing,
    ) -> None:
        self._world = world
        self._ingest = ingest
        self._watch = watch
        self._probe = probe
        self._pacing = pacing
        self.stats = stats
        self._queue: list[tuple[datetime, int, Call]] = []
        self._pushed = 0
        self._background: list[asyncio.Task[None]] = []

    async def run(self, on_update: OnUpdate) -> LiveStats:
        """Send every day's calls, wait for the pipeline to settle, return the final figures."""
        background = [
            asyncio.create_task(self._watch_forever(), name="watch"),
            asyncio.create_task(self._refresh_forever(on_update), name="refresh"),
        ]
        self._background = background
        try:
            began = time.monotonic()
            await self._advance_days()
            self.stats.days_seconds = time.monotonic() - began
            await self._drain(on_update)
            self.stats.drain_seconds = time.monotonic() - began - self.stats.days_seconds
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._probe.refresh(self.stats, with_recall=True)
        self.stats.finished = True
        on_update(self.stats)
        return self.stats

    async def _advance_days(self) -> None:
        pacing = self._pacing
        step = timedelta(days=1) / pacing.steps_per_day
        step_wall_s = pacing.seconds_per_day / pacing.steps_per_day
        began = time.monotonic()
        for day in range(self._world.shape.days):
            began += await self._hold_while_behind()
            self._push(self._world.plan_day(day))
            for index in range(pacing.steps_per_day):
                self._answer_notices()
                step_end = self._world.start + day * timedelta(days=1) + (index + 1) * step
                await self._send_until(step_end)
                self.stats.sim_now = step_end
                number = day * pacing.steps_per_day + index + 1
                # Pacing, not synchronisation: hold simulated time to the wall-clock rate.
                await asyncio.sleep(max(0.0, began + number * step_wall_s - time.monotonic()))

    async def _hold_while_behind(self) -> float:
        """Let a lagging pipeline catch up, so answers to messages come in time to count.

        Returns the wall seconds waited (the pacing baseline moves by as much).
        """
        pacing = self._pacing
        if pacing.max_lag_days <= 0:
            return 0.0
        began = time.monotonic()
        deadline = began + pacing.max_hold_days_of_wall * pacing.seconds_per_day
        while time.monotonic() < deadline:
            behind = self._behind(pacing.max_lag_days)
            if not behind:
                break
            polled_at = time.monotonic()
            await asyncio.sleep(0.1)  # polling the pipeline's progress, bounded by the deadline
            for service in behind:
                self.stats.held_seconds_by_service[service] += time.monotonic() - polled_at
        held = time.monotonic() - began
        self.stats.held_seconds += held
        return held

    def _behind(self, max_lag_days: float) -> list[str]:
        """The services more than `max_lag_days` behind simulated time."""
        lags = {
            "stage engine": self.stats.engine_lag_days(),
            "notifier": self.stats.notifier_lag_days(),
        }
        return [name for name, lag in lags.items() if lag is not None and lag > max_lag_days]

    def _answer_notices(self) -> None:
        for task in self._background:
            if task.done():
                task.result()  # a watcher or refresher that died stops the run with its error
        while self._watch.notices:
            notice = self._watch.notices.popleft()
            answer = self._world.respond(notice, self.stats.sim_now)
            if answer:
                self.stats.answers_planned += 1
                self._push(answer)

    def _push(self, calls: list[Call]) -> None:
        for call in calls:
            self._pushed += 1
            heapq.heappush(self._queue, (call.at, self._pushed, call))

    async def _send_until(self, step_end: datetime) -> None:
        """Send, in time order, every queued call before `step_end` (and before the end)."""
        limit = min(step_end, self._world.end)
        due: list[Call] = []
        while self._queue and self._queue[0][0] < limit:
            due.append(heapq.heappop(self._queue)[2])
        size = self._pacing.batch_size
        for first in range(0, len(due), size):
            chunk = due[first : first + size]
            result = await self._ingest.send_batch([call.to_segment() for call in chunk])
            self.stats.calls_sent += result.accepted
            self.stats.calls_rejected += len(result.rejected)

    async def _watch_forever(self) -> None:
        while True:
            await self._watch.poll(timeout_ms=200)

    async def _refresh_forever(self, on_update: OnUpdate) -> None:
        while True:
            await self._probe.refresh(self.stats)
            on_update(self.stats)
            await asyncio.sleep(self._pacing.refresh_seconds)  # the view's refresh period

    async def _drain(self, on_update: OnUpdate) -> None:
        """After the last day: wait until stages and actions stop changing, within a deadline."""
        self.stats.sim_now = self._world.end
        deadline = time.monotonic() + self._pacing.drain_seconds
        last, stable_since = self._fingerprint(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(self._pacing.refresh_seconds)  # polling the pipeline's figures
            await self._probe.refresh(self.stats)
            on_update(self.stats)
            now = self._fingerprint()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= self._pacing.settle_seconds:
                return

    def _fingerprint(self) -> tuple[object, ...]:
        actions = sum(sum(counts.values()) for counts in self.stats.actions.values())
        transitions = sum(sum(counts.values()) for counts in self.stats.transitions_by_day.values())
        return (tuple(sorted(self.stats.stages.items())), actions, transitions)
