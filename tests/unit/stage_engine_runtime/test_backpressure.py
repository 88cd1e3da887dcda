"""The outbox backlog brakes timers, then consumption, each with hysteresis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stage_engine.backpressure import OutboxPressure
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store.database import Database
from stage_engine.store.migrate import migrate
from stage_engine.store.offsets import StoredOffset
from stage_engine.store.tables import outbox_cursors, outbox_heads

from shared.db import make_engine
from tests.waiting import eventually

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"))
    await migrate(database.engine)
    yield database
    await database.dispose()


@pytest.fixture
def ownership() -> Ownership:
    """Partition 0 owned."""
    owned = Ownership()
    owned.take({0: StoredOffset(0, None)})
    return owned


async def test_over_the_limit_until_drained_below_half(db: Database, ownership: Ownership) -> None:
    metrics = EngineMetrics()
    pressure = OutboxPressure(
        db=db,
        ownership=ownership,
        metrics=metrics,
        max_backlog=4,
        timer_max_backlog=4,
        check_interval_s=0,
    )
    # 6 rows queued for partition 0 (owned), 9 for partition 1 (not owned).
    await _queued(db, {0: 6, 1: 9})
    assert await pressure.refresh() is True
    assert metrics.registry.get_sample_value("stage_engine_consumption_paused") == 1
    assert metrics.registry.get_sample_value("stage_engine_outbox_backlog") == 6
    await _published(db, {0: 3})  # 3 left: under the limit, not under half of it
    assert await pressure.refresh() is True
    await _published(db, {0: 4})  # 2 left
    assert await pressure.refresh() is False
    assert metrics.registry.get_sample_value("stage_engine_consumption_paused") == 0
    # New owned partitions are counted at once.
    ownership.take({0: StoredOffset(0, None), 1: StoredOffset(0, None)})
    assert await pressure.refresh() is True
    assert metrics.registry.get_sample_value("stage_engine_outbox_backlog") == 11


async def test_timers_hold_back_at_their_own_limit_and_consumption_only_at_the_outbox_limit(
    db: Database, ownership: Ownership
) -> None:
    """A mass of due timers stops at the timers' limit; events keep flowing below it."""
    metrics = EngineMetrics()
    pressure = OutboxPressure(
        db=db,
        ownership=ownership,
        metrics=metrics,
        max_backlog=8,
        timer_max_backlog=4,
        check_interval_s=0,
    )
    verdicts: list[tuple[int, bool, bool]] = []
    for waiting in (4, 5, 3, 2, 9, 4):
        await _waiting(db, waiting)
        consumption_held = await pressure.refresh()
        verdicts.append((waiting, pressure.timers_over, consumption_held))
        assert metrics.registry.get_sample_value("stage_engine_timers_paused") == int(
            pressure.timers_over
        )
    # (waiting, timers held, consumption held): timers from over their limit (4) until
    # half of it (2); consumption from over the outbox limit (8) until half of it.
    assert verdicts == [
        (4, False, False),
        (5, True, False),
        (3, True, False),
        (2, False, False),
        (9, True, True),
        (4, True, False),
    ]


async def test_the_loop_counts_apart_and_the_braked_loops_read_its_verdict(
    db: Database, ownership: Ownership
) -> None:
    """`over` follows the outbox while run() goes on, with nobody awaiting a count."""
    pressure = OutboxPressure(
        db=db,
        ownership=ownership,
        metrics=EngineMetrics(),
        max_backlog=2,
        timer_max_backlog=2,
        check_interval_s=0.01,
    )
    counting = asyncio.create_task(pressure.run())
    try:
        assert pressure.over is False
        await _queued(db, {0: 3})
        await eventually(_verdict(pressure), until=bool, timeout_s=5, what="over the limit")
        await _published(db, {0: 3})
        await eventually(_verdict(pressure), until=_not, timeout_s=5, what="under half")
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting


def _verdict(pressure: OutboxPressure) -> Callable[[], Awaitable[bool]]:
    async def read() -> bool:
        return pressure.over

    return read


def _not(value: bool) -> bool:
    return not value


async def _queued(db: Database, heads: dict[int, int]) -> None:
    """Queue heads as writers leave them (the rows themselves are not read by the count)."""
    async with db.write() as conn:
        await conn.execute(
            outbox_heads.insert(), [{"partition": p, "queued_seq": n} for p, n in heads.items()]
        )


async def _published(db: Database, cursors: dict[int, int]) -> None:
    async with db.write() as conn:
        await conn.execute(outbox_cursors.delete())
        await conn.execute(
            outbox_cursors.insert(),
            [{"partition": p, "published_seq": n} for p, n in cursors.items()],
        )


async def _waiting(db: Database, rows: int) -> None:
    """Partition 0 with `rows` queued and none published."""
    async with db.write() as conn:
        await conn.execute(outbox_heads.delete())
        await conn.execute(outbox_heads.insert(), [{"partition": 0, "queued_seq": rows}])
    await _published(db, {0: 0})
