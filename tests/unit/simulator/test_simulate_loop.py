"""The simulation loop: every planned call sent once in time order, answers sent, lag held."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.calls import Call
from simulator.ingest_client import BatchResult
from simulator.model import Notice, World
from simulator.population import PopulationShape
from simulator.simulate import Pacing, Simulation
from simulator.stats import LiveStats

START = datetime(2025, 1, 6, tzinfo=UTC)
FAST = Pacing(seconds_per_day=0.02, refresh_seconds=0.01, drain_seconds=0.05, settle_seconds=0.01)


class RecordingIngest:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    async def send_batch(self, items: Sequence[dict[str, Any]]) -> BatchResult:
        self.items.extend(items)
        return BatchResult(len(items))


class ScriptedWatch:
    """Hands the loop one notice once the simulation is past day 2."""

    def __init__(self, stats: LiveStats, notice: Notice) -> None:
        self.notices: deque[Notice] = deque()
        self._stats = stats
        self._notice: Notice | None = notice

    async def poll(self, timeout_ms: int = 200) -> int:
        await asyncio.sleep(0.002)  # a real poll waits for records; this one must yield too
        if self._notice and self._stats.sim_now >= START + timedelta(days=2):
            self.notices.append(self._notice)
            self._notice = None
        return 0


class NoProbe:
    async def refresh(self, stats: LiveStats, *, with_recall: bool = False) -> None:
        return None


class RecordingWorld(World):
    """The world, remembering every call it planned."""

    def __init__(self) -> None:
        super().__init__(shape=PopulationShape(users=60, days=6), seed=3, start=START)
        self.planned: list[Call] = []

    def plan_day(self, day: int) -> list[Call]:
        calls = super().plan_day(day)
        self.planned.extend(calls)
        return calls


async def test_every_planned_call_is_sent_once_in_time_order_with_answers() -> None:
    world = RecordingWorld()
    stats = LiveStats(start=START, days=6, sim_now=START)
    early = START + timedelta(hours=20)
    user = next(u.user_id for u in world.users if u.signs_up and u.arrives_at < early)
    notices = [Notice(f"n{i}", user, "coupon", START + timedelta(days=2), "CPN") for i in range(30)]
    watch = ScriptedWatch(stats, notices[0])
    watch.notices.extend(notices[1:])  # enough coupons that one is answered for sure
    ingest = RecordingIngest()
    updates: list[float] = []
    simulation = Simulation(
        world, ingest=ingest, watch=watch, probe=NoProbe(), stats=stats, pacing=FAST
    )
    final = await simulation.run(lambda current: updates.append(current.sim_day))

    sent = [item["messageId"] for item in ingest.items]
    assert len(set(sent)) == len(sent), "a call was sent twice"
    answers = [m for m in sent if m.startswith("answer-")]
    assert answers, "no answer to the coupons was sent"
    in_period = {c.message_id for c in world.planned if c.at < START + timedelta(days=6)}
    assert set(sent) - set(answers) == in_period
    times = [datetime.fromisoformat(item["timestamp"]) for item in ingest.items]
    assert times == sorted(times)
    assert all(START <= t < START + timedelta(days=6) for t in times)
    assert final.finished
    assert final.sim_now == START + timedelta(days=6)
    assert final.calls_sent == len(sent)
    assert final.answers_planned >= 1
    assert updates, "the view was never updated"


async def test_a_lagging_service_holds_simulated_time_within_the_bound() -> None:
    stats = LiveStats(start=START, days=2, sim_now=START)
    stats.engine_time = START - timedelta(days=5)  # the engine looks far behind, and stays so
    pacing = Pacing(
        seconds_per_day=0.05,
        max_lag_days=1.0,
        max_hold_days_of_wall=2.0,
        refresh_seconds=0.01,
        drain_seconds=0.02,
        settle_seconds=0.01,
    )
    watch = ScriptedWatch(stats, Notice("x", "nobody", "email", START))
    simulation = Simulation(
        World(shape=PopulationShape(users=5, days=2), seed=1, start=START),
        ingest=RecordingIngest(),
        watch=watch,
        probe=NoProbe(),
        stats=stats,
        pacing=pacing,
    )
    await simulation.run(lambda _: None)
    # Two days, each held at most 2 x 0.05 s, and the engine never caught up.
    assert 0.15 <= stats.held_seconds <= 1.0, stats.held_seconds

    unhurried = LiveStats(start=START, days=2, sim_now=START)
    simulation = Simulation(
        World(shape=PopulationShape(users=5, days=2), seed=1, start=START),
        ingest=RecordingIngest(),
        watch=ScriptedWatch(unhurried, Notice("x", "n", "email", START)),
        probe=NoProbe(),
        stats=unhurried,
        pacing=pacing,
    )
    await simulation.run(lambda _: None)
    assert unhurried.held_seconds < 0.05  # no lag known: no wait
