"""Async SQLAlchemy engines for PostgreSQL (asyncpg) and embedded SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def make_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine with the settings each backend needs to be safe under concurrency."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    # WAL lets readers (HTTP queries) run beside the writer; synchronous=FULL keeps
    # a committed batch on disk if the machine dies right after the commit.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


# One lock per SQLite engine (a service has one engine; tests build several).
_write_turns: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def sqlite_write_turn(engine: AsyncEngine) -> asyncio.Lock | None:
    """The lock a process's write transactions on `engine` take turns on; None off SQLite.

    SQLite lets one transaction write at a time, and a second writer waits in its busy
    handler, which polls in sleeps that grow to 100 ms. A service's loops that write
    (the notifier's consumer, claims, results and relay; the stage engine's batches,
    timers and relay) lost up to a tenth of a second per collision: 65 ms per write
    transaction on average in a `make run`. Queued on an asyncio.Lock instead, the
    next writer starts the moment the previous one commits. Other processes sharing
    the file still meet SQLite's own lock. PostgreSQL takes row locks: no turns there.
    """
    if engine.dialect.name != "sqlite":
        return None
    turn = _write_turns.get(engine)
    if turn is None:
        turn = _write_turns[engine] = asyncio.Lock()
    return turn
