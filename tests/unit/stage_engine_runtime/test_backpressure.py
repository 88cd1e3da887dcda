"""The outbox backlog brakes consumption and timers, with hysteresis."""

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
from stage_engine.store.tables import outbox
from stage_engine.store.transitions import drop_sent

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
        db=db, ownership=ownership, metrics=metrics, max_backlog=4, check_interval_s=0, recount_s=0
    )
    rows = [_row(f"t{n}", n % 2) for n in range(12)]
    async with db.write() as conn:
        await conn.execute(outbox.insert(), rows)
    # 6 rows of partition 0 (owned): over 4.
    assert await pressure.refresh() is True
    assert metrics.registry.get_sample_value("stage_engine_consumption_paused") == 1
    assert metrics.registry.get_sample_value("stage_engine_outbox_backlog") == 6
    async with db.write() as conn:
        await drop_sent(conn, [1, 3, 5])  # 3 left: under the limit, not under half of it
    assert await pressure.refresh() is True
    async with db.write() as conn:
        await drop_sent(conn, [7])  # 2 left
    assert await pressure.refresh() is False
    assert metrics.registry.get_sample_value("stage_engine_consumption_paused") == 0


async def test_the_loop_counts_apart_and_the_braked_loops_read_its_verdict(
    db: Database, ownership: Ownership
) -> None:
    """`over` follows the outbox while run() goes on, with nobody awaiting a count."""
    pressure = OutboxPressure(
        db=db,
        ownership=ownership,
        metrics=EngineMetrics(),
        max_backlog=2,
        check_interval_s=0.01,
        recount_s=0,
    )
    counting = asyncio.create_task(pressure.run())
    try:
        assert pressure.over is False
        rows = [_row(f"t{n}", 0) for n in range(3)]
        async with db.write() as conn:
            await conn.execute(outbox.insert(), rows)
        await eventually(_verdict(pressure), until=bool, timeout_s=5, what="over the limit")
        async with db.write() as conn:
            await drop_sent(conn, [1, 2, 3])
        await eventually(_verdict(pressure), until=_not, timeout_s=5, what="under half")
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting


async def test_between_counts_the_reported_rows_move_the_backlog(
    db: Database, ownership: Ownership
) -> None:
    metrics = EngineMetrics()
    pressure = OutboxPressure(db=db, ownership=ownership, metrics=metrics, max_backlog=4)
    async with db.write() as conn:
        await conn.execute(outbox.insert(), [_row(f"t{n}", 0) for n in range(3)])
    assert await pressure.refresh() is False  # the first judgement counts: 3
    pressure.queued(2)
    assert await pressure.refresh() is True  # 5, tracked: the outbox still holds 3
    assert metrics.registry.get_sample_value("stage_engine_outbox_backlog") == 5
    pressure.relayed(3)
    assert await pressure.refresh() is False  # 2: under half of the limit
    # New owned partitions: counted again, whatever was tracked.
    ownership.take({0: StoredOffset(0, None), 1: StoredOffset(0, None)})
    assert await pressure.refresh() is False
    assert metrics.registry.get_sample_value("stage_engine_outbox_backlog") == 3


def _verdict(pressure: OutboxPressure) -> Callable[[], Awaitable[bool]]:
    async def read() -> bool:
        return pressure.over

    return read


def _not(value: bool) -> bool:
    return not value


def _row(transition_id: str, partition: int) -> dict[str, object]:
    return {
        "transition_id": transition_id,
        "partition": partition,
        "created_at": T0,
        "subject": "u",
        "body": b"{}",
    }
