"""The outbox backlog brakes consumption and timers, with hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stage_engine.backpressure import OutboxPressure
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store.database import Database
from stage_engine.store.migrate import migrate
from stage_engine.store.offsets import StoredOffset
from stage_engine.store.tables import outbox
from stage_engine.store.transitions import drop_sent

from shared.db import make_engine

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def test_over_the_limit_until_drained_below_half(tmp_path: Path) -> None:
    db = Database(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"))
    await migrate(db.engine)
    ownership = Ownership()
    ownership.take({0: StoredOffset(0, None)})
    metrics = EngineMetrics()
    pressure = OutboxPressure(
        db=db, ownership=ownership, metrics=metrics, max_backlog=4, check_interval_s=0
    )
    rows = [{"transition_id": f"t{n}", "partition": n % 2, "created_at": T0} for n in range(12)]
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
    await db.dispose()
