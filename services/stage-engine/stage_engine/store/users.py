"""User rows: the core's state as JSON plus the columns the engine queries by."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.lifecycle import UserState
from stage_engine.lifecycle import stored as stored_form
from stage_engine.store.database import Database, among, chunks, driver_connection
from stage_engine.store.quarantine import UnreadableRow, move_to_quarantine
from stage_engine.store.tables import users


class StoredUser(NamedTuple):
    """A user's state and the events partition that owns its row (and its timers).
    A NamedTuple: made twice per fired timer, at a third of a dataclass's cost."""

    state: UserState
    partition: int


class LockedUser(NamedTuple):
    """A due row a timer round locked: its state (before or after firing), its partition
    and where it lies: PostgreSQL's ctid, so the round's UPDATE finds each row without
    probing the primary key (None on SQLite)."""

    state: UserState
    partition: int
    row: tuple[int, int] | None


def encode_state(state: UserState) -> str:
    return orjson.dumps(stored_form.to_row(state)).decode()


def decode_state(text: str | bytes) -> UserState:
    """Either stored format: rows written before format 2 read as they are."""
    return stored_form.decode(orjson.loads(text))


async def lock_users(
    conn: AsyncConnection,
    user_ids: Collection[str],
    *,
    now: datetime,
    quarantined: list[UnreadableRow] | None = None,
) -> dict[str, StoredUser]:
    """Load the rows of `user_ids` that exist, row-locked in user-id order.

    The fixed order means two engines locking overlapping sets (a merge reaches into
    another partition) wait for each other instead of deadlocking. SQLite ignores
    FOR UPDATE: there the database's single write lock serialises whole batches.
    A row that cannot be read is quarantined (store/quarantine.py), added to
    `quarantined`, and left out: its user starts afresh.
    """
    found: dict[str, StoredUser] = {}
    unreadable: list[UnreadableRow] = []
    for chunk in chunks(sorted(set(user_ids))):
        query = (
            select(users.c.user_id, users.c.partition, users.c.state)
            .where(among(conn, users.c.user_id, chunk))
            .order_by(users.c.user_id)
            .with_for_update()
        )
        for user_id, partition, state in (await conn.execute(query)).all():
            try:
                found[user_id] = StoredUser(decode_state(state), partition)
            except ValueError as exc:  # StateFormatError, or not JSON at all
                unreadable.append(UnreadableRow(user_id, partition, state, str(exc)))
    await move_to_quarantine(conn, unreadable, now=now)
    if quarantined is not None:
        quarantined.extend(unreadable)
    return found


_PG_USER_AT = "SELECT user_id FROM stage_engine_users WHERE ctid = $1"

_PG_LOCK_DUE = """
SELECT ctid, partition, state FROM stage_engine_users
WHERE partition = $1 AND next_due_at <= $2
ORDER BY next_due_at
LIMIT $3
FOR UPDATE SKIP LOCKED
"""


async def lock_due_users(
    conn: AsyncConnection,
    db: Database,
    *,
    partition: int,
    now: datetime,
    limit: int,
    wall_now: datetime,
    quarantined: list[UnreadableRow] | None = None,
) -> list[LockedUser]:
    """Up to `limit` rows of `partition` due at or before `now`, soonest first.

    SKIP LOCKED (PostgreSQL): a row another transaction holds (a batch being applied,
    another engine's timer) is left to it; once that commits, the row is either no
    longer due or is picked up by the next round. Unreadable rows are quarantined as
    lock_users does (stamped `wall_now`) and left out.
    """
    locked: list[LockedUser] = []
    unreadable: list[UnreadableRow] = []
    if not db.is_sqlite:
        # asyncpg directly: SKIP LOCKED never waits, so no deadlock to retry (and read
        # committed has no serialization failure); see driver_connection.
        driver = await driver_connection(conn)
        for row, part, state in await driver.fetch(_PG_LOCK_DUE, partition, now, limit):
            try:
                locked.append(LockedUser(decode_state(state), part, row))
            except ValueError as exc:  # the user id is read for the quarantine only
                user_id = await driver.fetchval(_PG_USER_AT, row)
                unreadable.append(UnreadableRow(user_id, part, state, str(exc)))
    else:
        query = (
            select(users.c.user_id, users.c.partition, users.c.state)
            .where(users.c.partition == partition, users.c.next_due_at <= now)
            .order_by(users.c.next_due_at)
            .limit(limit)
        )
        for user_id, part, state in (await conn.execute(query)).all():
            try:
                locked.append(LockedUser(decode_state(state), part, None))
            except ValueError as exc:
                unreadable.append(UnreadableRow(user_id, part, state, str(exc)))
    await move_to_quarantine(conn, unreadable, now=wall_now)
    if quarantined is not None:
        quarantined.extend(unreadable)
    return locked


# PostgreSQL: the whole batch as one array per column, one statement, one round trip;
# the arrays are encoded by asyncpg in C, not row by row through SQLAlchemy.
_PG_UPSERT = """
INSERT INTO stage_engine_users
    (user_id, partition, stage, is_anonymous, next_due_at, state, updated_at)
SELECT r.user_id, r.partition, r.stage, r.is_anonymous, r.next_due_at, r.state, $7
FROM unnest($1::text[], $2::int[], $3::text[], $4::bool[], $5::timestamptz[], $6::text[])
    AS r(user_id, partition, stage, is_anonymous, next_due_at, state)
ON CONFLICT (user_id) DO UPDATE SET
    partition = excluded.partition,
    stage = excluded.stage,
    is_anonymous = excluded.is_anonymous,
    next_due_at = excluded.next_due_at,
    state = excluded.state,
    updated_at = excluded.updated_at
"""


async def upsert_users(
    conn: AsyncConnection, db: Database, rows: Sequence[StoredUser], *, now: datetime
) -> None:
    """Write the rows in one multi-row statement, in user-id order (lock order).

    Always inside a batch's or a timer round's transaction: killed before its commit,
    the rows keep their old states and the batch or round is redone.
    """
    if not rows:
        return
    ordered = sorted(rows, key=lambda row: row.state.user_id)
    if not db.is_sqlite:
        states = [row.state for row in ordered]
        await conn.exec_driver_sql(
            _PG_UPSERT,
            (
                [state.user_id for state in states],
                [row.partition for row in ordered],
                [state.stage.value for state in states],
                [state.is_anonymous for state in states],
                [state.next_due_at for state in states],
                [encode_state(state) for state in states],
                now,
            ),
        )
        return
    values = [
        {
            "user_id": row.state.user_id,
            "partition": row.partition,
            "stage": row.state.stage.value,
            "is_anonymous": row.state.is_anonymous,
            "next_due_at": row.state.next_due_at,
            "state": encode_state(row.state),
            "updated_at": now,
        }
        for row in ordered
    ]
    statement = db.upsert(
        users,
        key=["user_id"],
        update=["partition", "stage", "is_anonymous", "next_due_at", "state", "updated_at"],
    )
    for chunk in chunks(values, 1000):
        await conn.execute(statement, chunk)


# PostgreSQL: a timer round's rows exist and are locked by the round, and only these
# columns change. An UPDATE joined to the arrays skips the upsert's insert attempt and
# conflict check per row (about an eighth of the round's database time). Each row is
# found by the ctid the round's SELECT ... FOR UPDATE read (a TID scan, not a probe of
# the primary key: 2 µs of PostgreSQL time a row less): the ctid cannot change while
# the round holds the row's lock, and nothing else in the round writes the row.
_PG_UPDATE_FIRED = """
UPDATE stage_engine_users AS u
SET stage = r.stage, next_due_at = r.next_due_at, state = r.state, updated_at = $5
FROM unnest($1::tid[], $2::text[], $3::timestamptz[], $4::text[])
    AS r(row, stage, next_due_at, state)
WHERE u.ctid = r.row
"""


async def update_fired_users(
    conn: AsyncConnection, db: Database, rows: Sequence[LockedUser], *, now: datetime
) -> None:
    """Write back the rows a timer round locked (lock_due_users) and fired.

    In the round's transaction: killed before its commit, the rows keep their old
    states, are still due, and fire again in the next round with the same ids.
    """
    if not rows:
        return
    if db.is_sqlite:
        await upsert_users(conn, db, [StoredUser(r.state, r.partition) for r in rows], now=now)
        return
    located: list[tuple[int, int] | None] = []
    stages: list[str] = []
    due_ats: list[datetime | None] = []
    texts: list[str] = []
    for row in rows:
        state = row.state
        located.append(row.row)
        stages.append(state.stage)  # a StrEnum member is its value
        due_ats.append(state.next_due_at)
        texts.append(encode_state(state))
    await conn.exec_driver_sql(_PG_UPDATE_FIRED, (located, stages, due_ats, texts, now))


async def delete_users(conn: AsyncConnection, user_ids: Collection[str]) -> None:
    """Remove merged-away profiles (in the merge's transaction: all of it or none)."""
    for chunk in chunks(sorted(user_ids)):
        await conn.execute(delete(users).where(among(conn, users.c.user_id, chunk)))
