"""Settings fail fast naming the variable; timer time is the wall or the watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from stage_engine.ownership import Ownership
from stage_engine.settings import StageEngineSettings
from stage_engine.store.offsets import StoredOffset
from stage_engine.timers import TimerTime

from shared.clock import ManualClock
from shared.errors import SettingsError
from shared.settings import load_settings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STAGE_CLOCK", "STAGE_ENGINE_GROUP", "STAGE_MAX_CONSECUTIVE_POISON"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(StageEngineSettings)
    assert settings.stage_clock == "wall"
    assert settings.stage_engine_group == "lifecycle-stage-engine"
    assert settings.stage_max_consecutive_poison == 1000
    assert settings.stage_dedup_window_days == 7


def test_a_bad_clock_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE_CLOCK", "sundial")
    with pytest.raises(SettingsError, match="STAGE_CLOCK: Input should be 'wall' or 'event'"):
        load_settings(StageEngineSettings)


def test_lateness_beyond_the_dedup_window_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE_DEDUP_WINDOW_DAYS", "1")
    monkeypatch.setenv("STAGE_ALLOWED_LATENESS_SECONDS", "90000")
    with pytest.raises(SettingsError, match=r"STAGE_ALLOWED_LATENESS_SECONDS=90000\.0 exceeds"):
        load_settings(StageEngineSettings)


def test_wall_time_is_the_clock_of_a_caught_up_partition() -> None:
    ownership = Ownership()
    ownership.take({7: StoredOffset(0, None)})
    ownership.note_lag(7, 0)
    time = TimerTime(mode="wall", clock=ManualClock(T0), ownership=ownership, lateness=timedelta(0))
    assert time.now_for(7) == T0


def test_event_time_is_each_partitions_watermark() -> None:
    ownership = Ownership()
    ownership.take({0: StoredOffset(10, T0), 1: StoredOffset(0, None)})
    time = TimerTime(
        mode="event",
        clock=ManualClock(T0 + timedelta(days=9)),
        ownership=ownership,
        lateness=timedelta(minutes=1),
    )
    assert time.now_for(0) == T0 - timedelta(minutes=1)
    assert time.now_for(1) is None  # no event yet: nothing fires
    assert time.now_for(2) is None  # not owned
    ownership.advanced(0, 20, T0 + timedelta(hours=1))
    ownership.advanced(0, 30, T0)  # an older batch maximum never moves it back
    assert time.now_for(0) == T0 + timedelta(hours=1) - timedelta(minutes=1)
    assert ownership.position(0) == 30


def test_released_partitions_are_forgotten_and_not_advanced() -> None:
    ownership = Ownership()
    ownership.take({0: StoredOffset(5, None), 1: StoredOffset(9, None)})
    generation = ownership.generation
    ownership.release([1])
    ownership.advanced(1, 50, T0)
    assert ownership.partitions == {0}
    assert ownership.position(1) is None
    ownership.take({1: StoredOffset(9, None)})
    assert ownership.generation == generation + 1


async def test_a_handover_waits_for_the_round_in_flight() -> None:
    import asyncio

    ownership = Ownership()
    order: list[str] = []
    started = asyncio.Event()

    async def round_in_flight() -> None:
        async with ownership.timer_lock:
            started.set()
            await asyncio.sleep(0)  # yields while holding the lock, like a transaction
            order.append("round done")

    async def handover() -> None:
        await started.wait()
        async with ownership.handover():
            order.append("handover")

    await asyncio.gather(round_in_flight(), handover())
    assert order == ["round done", "handover"]


class _Monotonic:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_an_idle_caught_up_partition_follows_the_highest_owned_event_time() -> None:
    monotonic = _Monotonic()
    ownership = Ownership(monotonic_s=monotonic)
    ownership.take({0: StoredOffset(10, T0), 1: StoredOffset(10, T0)})
    lateness = timedelta(minutes=1)
    time = TimerTime(
        mode="event",
        clock=ManualClock(T0),
        ownership=ownership,
        lateness=lateness,
        idle_after_s=5.0,
    )
    ownership.advanced(0, 20, T0 + timedelta(days=3))
    ownership.note_lag(1, 4)
    monotonic.now_s += 10
    assert time.now_for(1) == T0 - lateness  # records still to read: not idle
    ownership.note_lag(1, 0)
    assert time.now_for(1) == T0 + timedelta(days=3) - lateness  # idle and caught up
    ownership.advanced(1, 30, T0 + timedelta(hours=1))
    assert time.now_for(1) == T0 + timedelta(hours=1) - lateness  # it moved: its own again
    monotonic.now_s += 4
    assert time.now_for(1) == T0 + timedelta(hours=1) - lateness  # not idle long enough


def test_idle_following_is_off_by_default() -> None:
    monotonic = _Monotonic()
    ownership = Ownership(monotonic_s=monotonic)
    ownership.take({0: StoredOffset(10, T0), 1: StoredOffset(10, T0)})
    time = TimerTime(
        mode="event", clock=ManualClock(T0), ownership=ownership, lateness=timedelta(0)
    )
    ownership.advanced(0, 20, T0 + timedelta(days=3))
    ownership.note_lag(1, 0)
    monotonic.now_s += 3600
    assert time.now_for(1) == T0


def test_a_lagging_partition_fires_at_the_received_time_of_what_it_applied() -> None:
    """Wall clock after an outage: timers wait for the backlog, not for the wall."""
    ownership = Ownership()
    ownership.take({0: StoredOffset(10, None)})
    clock = ManualClock(T0 + timedelta(days=9))
    time = TimerTime(mode="wall", clock=clock, ownership=ownership, lateness=timedelta(0))
    assert time.now_for(0) is None  # lag not measured yet: nothing fires
    ownership.note_lag(0, 5_000)
    assert time.now_for(0) is None  # lagging, nothing applied since the take
    ownership.advanced(0, 20, T0, max_received_at=T0 + timedelta(hours=1))
    assert time.now_for(0) == T0 + timedelta(hours=1)
    ownership.note_lag(0, 0)
    assert time.now_for(0) == T0 + timedelta(days=9)  # caught up: the wall clock
