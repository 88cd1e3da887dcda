"""A connection a loop keeps between its transactions.

The shared engine pings each connection it hands out (shared.db); a loop
that commits a hundred times a second would pay that round trip every time.
Holding one connection per loop avoids it. If the connection breaks, the
error propagates and the loop stops (the service exits to be restarted; all
its state is durable); the next `begin` after a broken one reconnects.
On SQLite, `begin` first waits for its turn (shared.db.sqlite_write_turn).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import sqlite_write_turn


class HeldConnection:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._write_turn = sqlite_write_turn(engine)
        self._connection: AsyncConnection | None = None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        if self._connection is None or self._connection.closed:
            self._connection = await self._engine.connect()
        connection = self._connection
        try:
            async with self._write_turn or contextlib.nullcontext(), connection.begin():
                yield connection
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._connection = None
            raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
