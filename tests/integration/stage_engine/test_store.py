"""The store on PostgreSQL and on embedded SQLite: migrations, fencing, outbox, timers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.store import dedup, queries
from stage_engine.store import transitions as transition_store
from stage_engine.store import users as user_store
from stage_engine.store.database import Database
from stage_engine.store.migrate import VERSION_TABLE, alembic_config, migrate
from stage_engine.store.offsets import (
    FencedError,
    OffsetMove,
    create_missing_offsets,
    load_offsets,
    move_offsets,
)
from stage_engine.store.tables import metadata, transitions, users
from stage_engine.store.transitions import Cursor, NewTransition
from stage_engine.store.users import StoredUser

from shared.db import make_engine
from shared.transitions import Stage
from tests.integration.stage_engine.support import ROOT, T0, event, extra_database

CONFIG = LifecycleConfig()


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Database]:
    async with AsyncExitStack() as stack:
        if request.param == "postgresql":
            url = await stack.enter_async_context(extra_database(database_url))
        else:
            url = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
        database = Database(make_engine(url))
        stack.push_async_callback(database.dispose)
        await migrate(database.engine)
        yield database


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return list(compare_metadata(context, metadata))


async def test_migrations_create_exactly_the_tables_declared(db: Database) -> None:
    async with db.read() as conn:
        assert await conn.run_sync(_differences) == []
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert VERSION_TABLE in names
    assert all(name.startswith("stage_engine_") for name in names)
    await migrate(db.engine)  # a second run is a no-op


async def test_offsets_move_only_from_where_the_batch_started(db: Database) -> None:
    topic = "events"
    async with db.write() as conn:
        await create_missing_offsets(conn, db, topic, {0: 0, 1: 5})
        await create_missing_offsets(conn, db, topic, {0: 99})  # existing rows stay
    later = T0 + timedelta(hours=1)
    async with db.write() as conn:
        await move_offsets(conn, topic, [OffsetMove(0, 0, 10, later), OffsetMove(1, 5, 6, None)])
    stray = StoredUser(advance(None, event("m", at=T0, user_id="zombie"), CONFIG).state, 0)

    async def zombie_batch() -> None:
        async with db.write() as conn:
            await user_store.upsert_users(conn, db, [stray], now=T0)
            await move_offsets(conn, topic, [OffsetMove(0, 0, 20, None)])

    with pytest.raises(FencedError, match=r"events\[0\] is no longer 0"):
        await zombie_batch()
    async with db.read() as conn:
        stored = await load_offsets(conn, topic, [0, 1])
        rows = (await conn.execute(select(users.c.user_id))).all()
    assert (stored[0].next_offset, stored[0].max_event_time) == (10, later)
    assert (stored[1].next_offset, stored[1].max_event_time) == (6, None)
    assert rows == [], "the fenced transaction wrote nothing"


async def test_times_round_trip_as_aware_utc(db: Database) -> None:
    plus8 = timezone(timedelta(hours=8))
    at = datetime(2025, 3, 3, 17, 0, tzinfo=plus8)  # 09:00 UTC
    state = advance(None, event("m", at=at, user_id="u"), CONFIG).state
    async with db.write() as conn:
        await user_store.upsert_users(conn, db, [StoredUser(state, 2)], now=at)
    async with db.read() as conn:
        due_at = (await conn.execute(select(users.c.next_due_at))).scalar_one()
    assert due_at == state.next_due_at
    assert due_at.tzinfo == UTC


async def test_due_rows_are_picked_per_partition_in_due_order(db: Database) -> None:
    rows = [
        StoredUser(
            advance(
                None, event(f"m{n}", at=T0 + timedelta(hours=n), user_id=f"u{n}"), CONFIG
            ).state,
            n % 2,
        )
        for n in range(6)
    ]
    async with db.write() as conn:
        await user_store.upsert_users(conn, db, rows, now=T0)
    horizon = T0 + timedelta(days=3, hours=2)  # the 3-day milestones of u0, u1, u2
    async with db.write() as conn:
        due = await user_store.lock_due_users(
            conn, db, partition=0, now=horizon, limit=10, wall_now=T0
        )
    assert [row.state.user_id for row in due] == ["u0", "u2"]
    assert all(row.state.stage is Stage.NEW for row in due)


async def test_due_rows_stay_locked_until_the_round_commits(database_url: str) -> None:
    """The round's first statement locks its rows in the round's transaction: another
    writer cannot take them until the round commits (the lock is not let go at once)."""
    async with extra_database(database_url) as url:
        db = Database(make_engine(url))
        try:
            await migrate(db.engine)
            state = advance(None, event("m", at=T0, user_id="u"), CONFIG).state
            async with db.write() as conn:
                await user_store.upsert_users(conn, db, [StoredUser(state, 0)], now=T0)
            async with db.write() as round_conn:
                due = await user_store.lock_due_users(
                    round_conn, db, partition=0, now=T0 + timedelta(days=30), limit=10, wall_now=T0
                )
                assert [row.state.user_id for row in due] == ["u"]
                async with db.write() as other:
                    with pytest.raises(DBAPIError, match="could not obtain lock"):
                        await other.exec_driver_sql(
                            "SELECT 1 FROM stage_engine_users WHERE user_id = 'u' FOR UPDATE NOWAIT"
                        )
        finally:
            await db.dispose()


async def test_partitions_with_due_rows_probe_the_due_index(db: Database) -> None:
    # Partition 0: 300 rows due; 1: none due yet; 2: not in `nows`; 4: no rows at all.
    rows = [
        StoredUser(
            advance(None, event(f"m{n}", at=T0, user_id=f"u{n:04d}"), CONFIG).state,
            0 if n < 300 else (1 if n < 310 else 2),
        )
        for n in range(320)
    ]
    async with db.write() as conn:
        await user_store.upsert_users(conn, db, rows, now=T0)
    due_at = rows[0].state.next_due_at
    assert due_at is not None
    nows = {0: due_at, 1: due_at - timedelta(seconds=1), 4: due_at}
    async with db.read() as conn:
        assert await queries.partitions_with_due_rows(conn, nows) == {0}
        if db.is_sqlite:
            return  # the plan below is PostgreSQL's; SQLite's answer is checked above
        await conn.exec_driver_sql("ANALYZE stage_engine_users")
        # Nearly every row due is when EXISTS(...) was planned as a sequential scan.
        probe = _probe_sql(conn, nows)
        plan = "\n".join(row[0] for row in (await conn.exec_driver_sql("EXPLAIN " + probe)).all())
    assert "Seq Scan" not in plan, plan


def _probe_sql(conn: AsyncConnection, nows: dict[int, datetime]) -> str:
    """The probe statement with its values inlined, for EXPLAIN."""
    statement = queries.due_partitions_statement(nows)
    return str(statement.compile(conn.sync_engine, compile_kwargs={"literal_binds": True}))


async def test_a_transition_already_in_the_history_is_not_queued_again(db: Database) -> None:
    step = advance(None, event("m", at=T0, type="identify", name=None, user_id="u"), CONFIG)
    items = [NewTransition(t, 1) for t in step.transitions]
    now = T0 + timedelta(minutes=1)
    async with db.write() as conn:
        assert await transition_store.record_transitions(conn, db, items + items, now=now) == 1
    async with db.write() as conn:
        assert await transition_store.record_transitions(conn, db, items, now=now) == 0
        await transition_store.ensure_cursors(conn, db, [0, 1])
    async with db.read() as conn:
        cursors = await transition_store.lock_cursors(conn, db, [0, 1])
        pending = await transition_store.pending_transitions(conn, _takes(cursors, 10))
        assert await transition_store.outbox_backlog(conn, [0, 1]) == 1
        # PostgreSQL takes the server's time, SQLite the writer's.
        assert await transition_store.oldest_pending_at(conn, [1]) is not None
        assert await transition_store.oldest_pending_at(conn, [0]) is None
    assert cursors == {0: Cursor(published=0, queued=0), 1: Cursor(published=0, queued=1)}
    assert [(p.partition, p.seq, p.transition_id) for p in pending] == [
        (1, 1, step.transitions[0].id)
    ]
    assert pending[0].subject == "u"
    async with db.write() as conn:
        await transition_store.mark_published(conn, {1: 1})
    async with db.read() as conn:
        assert await transition_store.outbox_backlog(conn, [0, 1]) == 0
        assert await transition_store.oldest_pending_at(conn, [0, 1]) is None
        cursors = await transition_store.lock_cursors(conn, db, [0, 1])
        assert await transition_store.pending_transitions(conn, _takes(cursors, 10)) == []


async def test_known_ids_among_new_ones_leave_no_gap_in_the_seqs(db: Database) -> None:
    """The batch that repeats an emitted id (on PostgreSQL: the COPY fails, and the
    skipping statements run) queues only its new ids, at the next seqs."""
    steps = [
        advance(None, event(f"m{n}", at=T0, type="identify", name=None, user_id=f"u{n}"), CONFIG)
        for n in range(3)
    ]
    first, second, third = ([NewTransition(t, 2) for t in s.transitions] for s in steps)
    async with db.write() as conn:
        assert await transition_store.record_transitions(conn, db, first, now=T0) == len(first)
    async with db.write() as conn:
        repeated = second + first + third
        added = await transition_store.record_transitions(conn, db, repeated, now=T0)
        await transition_store.ensure_cursors(conn, db, [2])
    async with db.read() as conn:
        cursors = await transition_store.lock_cursors(conn, db, [2])
        pending = await transition_store.pending_transitions(conn, _takes(cursors, 100))
    expected = [item.transition.id for item in first + second + third]
    assert added == len(second) + len(third)
    assert cursors == {2: Cursor(published=0, queued=len(expected))}
    assert [row.transition_id for row in pending] == expected
    assert [row.seq for row in pending] == list(range(1, len(expected) + 1))


def test_migrate_command_prepares_an_embedded_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "stage_engine", "migrate"],
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database migrated" in done.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as conn:
        version = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    assert version == [(ScriptDirectory.from_config(alembic_config()).get_current_head(),)]


@pytest.fixture(params=["postgresql", "sqlite"])
async def blank_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[str]:
    """An empty database of each kind, for migrating step by step."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}"
        return
    async with extra_database(database_url) as url:
        yield url


def _takes(cursors: dict[int, Cursor], rows: int) -> dict[int, tuple[int, int]]:
    """Up to `rows` past each cursor."""
    return {partition: (cursor.published, rows) for partition, cursor in cursors.items()}


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _outbox_table(*, with_body: bool) -> Table:
    """The outbox table as revisions 0001-0002 (or 0003, `with_body`) made it."""
    columns: list[Column[Any]] = [
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("transition_id", String(64), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    ]
    if with_body:
        columns += [Column("subject", String(200)), Column("body", LargeBinary)]
    return Table("stage_engine_outbox", MetaData(), *columns)


def _history_row(transition_id: str, subject: str = "u-1") -> dict[str, object]:
    return {
        "id": transition_id,
        "user_id": subject,
        "subject": subject,
        "kind": "stage_changed",
        "occurred_at": T0,
        "body": f'{{"id":"{transition_id}"}}'.encode(),
    }


async def test_outbox_rows_survive_the_upgrade_that_drops_the_id_index(blank_url: str) -> None:
    outbox = _outbox_table(with_body=False)
    db = Database(make_engine(blank_url))
    try:
        await migrate(db.engine, "0001")
        row = {"transition_id": "t-1", "partition": 3, "created_at": T0}
        async with db.write() as conn:
            await conn.execute(outbox.insert(), row)
        await migrate(db.engine, "0002")
        async with db.write() as conn:
            await conn.execute(outbox.insert(), row)  # the id is no longer unique
            rows = (await conn.execute(select(outbox.c.transition_id, outbox.c.partition))).all()
    finally:
        await db.dispose()
    assert rows == [("t-1", 3), ("t-1", 3)]


async def test_queued_rows_get_their_key_and_body_from_the_history_on_upgrade(
    blank_url: str,
) -> None:
    outbox = _outbox_table(with_body=True)
    db = Database(make_engine(blank_url))
    try:
        await migrate(db.engine, "0002")
        history = _history_row("t-1") | {"user_id": "u-merged-into"}
        async with db.write() as conn:
            await conn.execute(transitions.insert(), history)
            await conn.execute(
                _outbox_table(with_body=False).insert(),
                [
                    {"transition_id": "t-1", "partition": 3, "created_at": T0},
                    # not in the history: the relay's join never found it either
                    {"transition_id": "t-lost", "partition": 3, "created_at": T0},
                ],
            )
        await migrate(db.engine, "0003")
        async with db.write() as conn:
            columns = outbox.c.transition_id, outbox.c.partition, outbox.c.subject, outbox.c.body
            rows = (await conn.execute(select(*columns))).all()
    finally:
        await db.dispose()
    assert rows == [("t-1", 3, "u-1", b'{"id":"t-1"}')]


async def test_waiting_rows_become_the_first_seqs_of_their_partitions_on_upgrade(
    blank_url: str,
) -> None:
    outbox = _outbox_table(with_body=True)
    db = Database(make_engine(blank_url))
    try:
        await migrate(db.engine, "0003")
        async with db.write() as conn:
            await conn.execute(
                transitions.insert(),
                [_history_row(t) for t in ("t-sent", "t-1", "t-2")] + [_history_row("t-x", "u-2")],
            )
            # In outbox order: t-2 was queued before t-1; t-sent is published already.
            await conn.execute(
                outbox.insert(),
                [
                    {"transition_id": tid, "partition": p, "created_at": T0, "subject": s}
                    | {"body": f'{{"id":"{tid}"}}'.encode()}
                    for tid, p, s in (("t-2", 3, "u-1"), ("t-x", 5, "u-2"), ("t-1", 3, "u-1"))
                ],
            )
        await migrate(db.engine)
        async with db.write() as conn:
            assert await conn.run_sync(_differences) == []
            assert await transition_store.outbox_backlog(conn, [3, 5]) == 3
            assert await transition_store.oldest_pending_at(conn, [3, 5]) == T0
            cursors = await transition_store.lock_cursors(conn, db, [3, 5])
            waiting = await transition_store.pending_transitions(conn, _takes(cursors, 10))
            # The next transition of partition 3 follows them.
            step = advance(None, event("m", at=T0, type="identify", name=None, user_id="u"), CONFIG)
            await transition_store.record_transitions(
                conn, db, [NewTransition(t, 3) for t in step.transitions], now=T0
            )
            await transition_store.mark_published(conn, {3: 1})  # t-2 is published
        async with db.engine.begin() as conn:  # and back: what waits returns to the outbox
            await conn.run_sync(_downgrade, "0003")
        async with db.write() as conn:
            columns = outbox.c.transition_id, outbox.c.partition, outbox.c.subject
            back = (await conn.execute(select(*columns).order_by(outbox.c.seq))).all()
    finally:
        await db.dispose()
    assert cursors == {3: Cursor(published=0, queued=2), 5: Cursor(published=0, queued=1)}
    assert [(row.partition, row.seq, row.transition_id, row.subject) for row in waiting] == [
        (3, 1, "t-2", "u-1"),
        (3, 2, "t-1", "u-1"),
        (5, 1, "t-x", "u-2"),
    ]
    new_id = step.transitions[0].id
    assert sorted(back) == sorted([("t-1", 3, "u-1"), ("t-x", 5, "u-2"), (new_id, 3, "u")])
    assert [tid for tid, partition, _ in back if partition == 3] == ["t-1", new_id]


class _KafkaRefusedError(Exception):
    pass


async def _relay_round_that_fails(db: Database) -> None:
    async with db.write() as conn:
        cursors = await transition_store.lock_cursors(conn, db, [0, 1])
        rows = await transition_store.pending_transitions(conn, _takes(cursors, 2))
        assert len(rows) == 4
        await transition_store.mark_published(conn, {0: 2, 1: 2})
        raise _KafkaRefusedError


async def test_the_relay_reads_rows_in_order_and_moves_cursors_only_on_commit(
    db: Database,
) -> None:
    items = [
        NewTransition(t, n % 2)
        for n in range(6)
        for t in advance(
            None, event(f"m{n}", at=T0, type="identify", name=None, user_id=f"u{n}"), CONFIG
        ).transitions
    ]
    async with db.write() as conn:
        await transition_store.record_transitions(conn, db, items, now=T0)
        await transition_store.ensure_cursors(conn, db, [0, 1])
    # Publishing fails inside the round's transaction: the cursors stay.
    with pytest.raises(_KafkaRefusedError):
        await _relay_round_that_fails(db)
    async with db.write() as conn:
        cursors = await transition_store.lock_cursors(conn, db, [0, 1])
        taken = await transition_store.pending_transitions(conn, _takes(cursors, 2))
        await transition_store.mark_published(conn, {0: 2, 1: 2})
    assert cursors == {0: Cursor(published=0, queued=3), 1: Cursor(published=0, queued=3)}
    assert [(row.partition, row.seq, row.subject) for row in taken] == [
        (0, 1, "u0"),
        (0, 2, "u2"),
        (1, 1, "u1"),
        (1, 2, "u3"),
    ]
    assert [row.transition_id for row in taken] == [items[n].transition.id for n in (0, 2, 1, 3)]
    assert all(row.body.startswith(b'{"specversion"') for row in taken)
    async with db.write() as conn:
        await transition_store.mark_published(conn, {1: 1})  # never backwards
        cursors = await transition_store.lock_cursors(conn, db, [0, 1])
        rest = await transition_store.pending_transitions(conn, _takes(cursors, 10))
        assert await transition_store.outbox_backlog(conn, [0, 1]) == 2
    assert cursors == {0: Cursor(published=2, queued=3), 1: Cursor(published=2, queued=3)}
    assert [row.subject for row in rest] == ["u4", "u5"]


async def test_a_partition_without_a_cursor_row_is_not_relayed(db: Database) -> None:
    step = advance(None, event("m", at=T0, type="identify", name=None, user_id="u"), CONFIG)
    async with db.write() as conn:
        await transition_store.record_transitions(
            conn, db, [NewTransition(t, 4) for t in step.transitions], now=T0
        )
        assert await transition_store.lock_cursors(conn, db, [4]) == {}
        assert await transition_store.outbox_backlog(conn, [4]) == 1


async def _queue_one(db: Database, conn: AsyncConnection, n: int, partition: int) -> None:
    step = advance(None, event(f"m{n}", at=T0, type="identify", name=None, user_id=f"u{n}"), CONFIG)
    await transition_store.record_transitions(
        conn, db, [NewTransition(t, partition) for t in step.transitions], now=T0
    )


async def test_writers_of_one_partition_commit_their_seqs_in_order(database_url: str) -> None:
    """A writer holds its partition's queue head until it commits: a second writer of
    that partition waits (so its later seq cannot commit first), one of another does not."""
    async with extra_database(database_url) as url:
        db = Database(make_engine(url))
        try:
            await migrate(db.engine)
            async with db.write() as conn:
                await _queue_one(db, conn, 0, partition=0)  # the head row exists
            async with db.write() as first:
                await _queue_one(db, first, 1, partition=0)
                async with db.write() as other:
                    await _queue_one(db, other, 2, partition=1)
                    await other.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                    with pytest.raises(DBAPIError, match="lock timeout"):
                        await _queue_one(db, other, 3, partition=0)
        finally:
            await db.dispose()


async def test_a_second_relay_of_a_partition_waits_for_the_first(database_url: str) -> None:
    async with extra_database(database_url) as url:
        db = Database(make_engine(url))
        try:
            await migrate(db.engine)
            async with db.write() as conn:
                await transition_store.ensure_cursors(conn, db, [0, 1])
            async with db.write() as relaying:
                assert await transition_store.lock_cursors(relaying, db, [0]) == {0: Cursor(0, 0)}
                async with db.write() as other:
                    assert await transition_store.lock_cursors(other, db, [1]) == {1: Cursor(0, 0)}
                    await other.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                    with pytest.raises(DBAPIError, match="lock timeout"):
                        await transition_store.lock_cursors(other, db, [0])
        finally:
            await db.dispose()


async def test_a_message_id_is_new_once_within_the_window(db: Database) -> None:
    first = [dedup.SeenMessage(f"m{n}", n % 2, T0) for n in range(3)]
    async with db.write() as conn:
        assert await dedup.remember_new(conn, db, first) == {"m0", "m1", "m2"}
    again = [dedup.SeenMessage("m1", 1, T0), dedup.SeenMessage("m3", 1, T0)]
    async with db.write() as conn:
        assert await dedup.remember_new(conn, db, again) == {"m3"}
        assert await dedup.remember_new(conn, db, []) == set()
    async with db.write() as conn:
        gone = await dedup.forget_older_than(
            conn, partition=1, horizon=T0 + timedelta(seconds=1), limit=10
        )
    assert gone == 2  # m1 and m3; m0 and m2 are partition 0's
    async with db.write() as conn:
        assert await dedup.remember_new(conn, db, again) == {"m1", "m3"}
