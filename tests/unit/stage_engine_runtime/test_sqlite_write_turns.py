"""On SQLite the engine's write transactions take turns in-process, first come first served."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine
from stage_engine.store.database import Database

from tests.write_turns import assert_second_write_waits_for_the_first


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
        await assert_second_write_waits_for_the_first(db.write, db.write)
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one() == 2
    finally:
        await db.dispose()
