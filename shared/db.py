"""Async SQLAlchemy engines for PostgreSQL (asyncpg) and embedded SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


@dataclass(frozen=True, slots=True)
class DbTimeouts:
    """How long a PostgreSQL client waits before it calls the database unreachable.

    Without these, a database that stops answering (a silent network partition, a
    frozen server) holds every awaiting statement forever: a consumer keeps its
    partitions and its locks while nothing moves. With them every wait ends in an
    error the loops' supervisor counts, backs off from and shows in readiness.
    """

    # The server cancels a statement running longer (statement_timeout); the client
    # gives up STATEMENT_GRACE_S later (asyncpg's command_timeout), when the server
    # did not even answer with the cancellation. None: no limit (migrations).
    statement_s: float | None = 30.0
    # Opening a connection (TCP, TLS, start-up), per attempt.
    connect_s: float = 10.0
    # Waiting for a free connection when the pool is exhausted.
    pool_checkout_s: float = 30.0

    def without_statement_limit(self) -> DbTimeouts:
        """For schema migrations, whose index builds may take longer than any batch."""
        return replace(self, statement_s=None)


# The client's deadline past the server's, so the server's cancellation (which keeps
# the connection usable) normally comes first.
STATEMENT_GRACE_S = 5.0


def _asyncpg_timeouts(timeouts: DbTimeouts) -> dict[str, Any]:
    args: dict[str, Any] = {"timeout": timeouts.connect_s}
    if timeouts.statement_s is not None:
        args["command_timeout"] = timeouts.statement_s + STATEMENT_GRACE_S
        statement_ms = max(1, round(timeouts.statement_s * 1000))
        args["server_settings"] = {"statement_timeout": str(statement_ms)}
    return args


def make_engine(
    database_url: str | SecretStr, *, pool_size: int = 10, timeouts: DbTimeouts | None = None
) -> AsyncEngine:
    """An engine with the settings each backend needs to be safe under concurrency,
    and (PostgreSQL) deadlines on every wait for the server (`DbTimeouts`)."""
    timeouts = timeouts or DbTimeouts()
    if isinstance(database_url, SecretStr):  # the settings' form: it carries a password
        database_url = database_url.get_secret_value()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _sqlite_pragmas(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeouts.pool_checkout_s,
        connect_args=_asyncpg_timeouts(timeouts),
        # Errors and logs never carry bound parameters: they hold user ids, emails and
        # phones (a state's JSON), and errors reach logs and dead-letter headers.
        hide_parameters=True,
    )
    _ping_on_checkout(engine)
    return engine


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """Every connection the pool hands out is alive: a dead one (PostgreSQL restarted,
    the network cut) is replaced before any statement of the caller's runs on it.

    This is pool_pre_ping's promise in one round trip: SQLAlchemy's ping for asyncpg
    takes three when no transaction is open (BEGIN, `;`, ROLLBACK, for pgbouncer's
    transaction mode), before every transaction of every loop. In the stage engine's
    latency benchmark at 4,600 events/s (one run each) the p50/p99 went from 121/205 ms
    to 91/136 ms with this ping instead.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            # the simple query protocol: one message each way, no prepared statement
            # (so it also works behind pgbouncer in transaction mode)
            dbapi_connection.run_async(lambda conn: conn.execute("SELECT 1"))
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one).
            raise DisconnectionError(f"database connection lost: {exc}") from exc


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
