"""The engine's handle on the database: write transactions, dialect differences, retries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import ColumnElement, Table, any_, bindparam, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import sqlite_write_turn

T = TypeVar("T")

# Bound parameters per statement stay far below PostgreSQL's 32767 and SQLite's 32766.
IN_CHUNK = 5000
_WRITE_OPTION = "stage_engine_write"
# PostgreSQL: deadlock detected, serialization failure. Both mean "run it again".
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


class Database:
    """One AsyncEngine, used for short read transactions and batch write transactions.

    On SQLite a write transaction starts with BEGIN IMMEDIATE: it takes the write lock
    up front (waiting up to the busy timeout) instead of failing when a reader upgrades
    while another process writes. The engine's own loops (batches, timers, relay,
    housekeeping) first take turns in-process (shared.db.sqlite_write_turn).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database {self.dialect!r}: use PostgreSQL or SQLite")
        if self.is_sqlite:
            _sqlite_explicit_begin(engine)
        else:
            _timestamptz_as_microseconds(engine)
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._write_turn = sqlite_write_turn(engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        async with self._write_turn or contextlib.nullcontext(), self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()

    def insert_ignoring_conflicts(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """INSERT ... ON CONFLICT DO NOTHING."""
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(
        self, table: Table, *, key: Sequence[str], update: Sequence[str]
    ) -> postgresql.Insert | sqlite.Insert:
        """INSERT ... ON CONFLICT (key) DO UPDATE SET each `update` column to the new value."""
        if self.is_sqlite:
            lite = sqlite.insert(table)
            return lite.on_conflict_do_update(
                index_elements=list(key), set_={name: lite.excluded[name] for name in update}
            )
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(key), set_={name: pg.excluded[name] for name in update}
        )


def among(
    conn: AsyncConnection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL as `= ANY($1)` with one array parameter: one
    prepared statement whatever the count, instead of a new one per list length."""
    if conn.dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column == any_(array)
    return column.in_(values)


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """PostgreSQL: the asyncpg connection under `conn`, in `conn`'s transaction.

    For COPY, and for the statements that return a row per fired timer: asyncpg's own
    records cost a microsecond a row less than SQLAlchemy's rows. Its errors are
    asyncpg's, not wrapped in DBAPIError: used only where no error is retryable.
    """
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's adapter sends BEGIN with the transaction's first statement. A
        # statement sent straight to asyncpg before that would run on its own and
        # commit at once: its row locks gone, its deletions kept whatever happens next.
        await conn.exec_driver_sql("SELECT 1")
    return driver


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a busy database (SQLite)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig: Any = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


def chunks(items: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """Lists of at most `size` items, for IN (...) lists and multi-row statements."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sqlite_explicit_begin(engine: AsyncEngine) -> None:
    # pysqlite's own implicit BEGIN would defeat BEGIN IMMEDIATE: turn it off, emit ours.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


# PostgreSQL's timestamptz on the wire: microseconds since 2000-01-01 UTC.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_timestamptz(value: datetime) -> tuple[int]:
    # An aware datetime only: a naive one cannot be subtracted from the epoch (TypeError).
    return ((value - _PG_EPOCH) // _MICROSECOND,)


def _decode_timestamptz(value: tuple[int]) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=value[0])


def _timestamptz_as_microseconds(engine: AsyncEngine) -> None:
    """asyncpg's own timestamptz encoder costs 1.2 µs a value (two comparisons with
    naive infinity datetimes, astimezone, a timedelta and its attributes); this one
    0.3. A timer round encodes two per row (the history's occurred_at in the COPY, the
    user's next_due_at in the update): 6.1-6.7 -> 4.8-5.0 µs of client CPU a row for
    both statements. Decoding gets slower (1.4 -> 1.7 µs a value); the engine's hot
    paths read no timestamps. PostgreSQL's infinity is not representable as a datetime
    and is never stored by the engine.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(
            lambda conn: conn.set_type_codec(
                "timestamptz",
                schema="pg_catalog",
                encoder=_encode_timestamptz,
                decoder=_decode_timestamptz,
                format="tuple",
            )
        )
