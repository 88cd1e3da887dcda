"""The check both services' SQLite stores share: a second write transaction waits its turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

WriteTransaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


async def assert_second_write_waits_for_the_first(
    first: WriteTransaction, second: WriteTransaction
) -> None:
    """`second` neither begins nor fails while `first`'s transaction is open, then runs.

    Both write to a table `t (n INTEGER)` that must exist.
    """
    order: list[str] = []
    first_inside, release_first = asyncio.Event(), asyncio.Event()
    second_moved = asyncio.Event()  # began its transaction, or failed to

    async def write_first() -> None:
        async with first() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            order.append("first writes")
            first_inside.set()
            await release_first.wait()
        order.append("first committed")

    async def write_second() -> None:
        await first_inside.wait()
        try:
            async with second() as conn:
                order.append("second begins")
                second_moved.set()
                await conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        except Exception:
            second_moved.set()
            raise

    tasks = [asyncio.create_task(write_first()), asyncio.create_task(write_second())]
    await first_inside.wait()
    # Without a turn the second write begins (or meets SQLite's lock and fails) within
    # milliseconds; with it, it does neither while the first transaction is open.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second_moved.wait(), timeout=0.5)
    release_first.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == ["first writes", "first committed", "second begins"]
