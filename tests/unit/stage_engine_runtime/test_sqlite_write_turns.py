"""On SQLite the engine's write transactions take turns in-process, first come first served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from stage_engine.store.database import Database


async def test_a_second_write_waits_its_turn_instead_of_meeting_a_locked_database(
    tmp_path: Path,
) -> None:
    # No busy timeout: a BEGIN IMMEDIATE that finds the database locked fails at once.
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}", connect_args={"timeout": 0}
    )
    db = Database(engine)
    try:
        async with db.write() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        order: list[str] = []
        first_inside, release_first = asyncio.Event(), asyncio.Event()
        second_moved = asyncio.Event()  # began its transaction, or failed to

        async def first() -> None:
            async with db.write() as conn:
                await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                order.append("first writes")
                first_inside.set()
                await release_first.wait()
            order.append("first committed")

        async def second() -> None:
            await first_inside.wait()
            try:
                async with db.write() as conn:
                    order.append("second begins")
                    second_moved.set()
                    await conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            except Exception:
                second_moved.set()
                raise

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_inside.wait()
        # Without its turn the second write meets the lock and fails within milliseconds;
        # with it, it neither begins nor fails while the first transaction is open.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(second_moved.wait(), timeout=0.5)
        release_first.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        assert order == ["first writes", "first committed", "second begins"]
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one() == 2
    finally:
        await db.dispose()
