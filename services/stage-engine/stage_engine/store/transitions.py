"""Transitions: the history of every user, and the outbox the relay publishes from."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.lifecycle.emit import Emitted
from stage_engine.store.database import Database, among, chunks, driver_connection
from stage_engine.store.tables import outbox, transitions


class NewTransition(NamedTuple):
    """A NamedTuple: made once per fired timer, at a third of a dataclass's cost."""

    transition: Emitted
    partition: int  # the owning user row's partition: its owner relays it


class PendingTransition(NamedTuple):
    seq: int
    transition_id: str
    subject: str
    body: bytes


async def record_transitions(
    conn: AsyncConnection, db: Database, items: Sequence[NewTransition], *, now: datetime
) -> int:
    """Add the transitions to the history and, the ones new to it, to the outbox.

    An id already in the history was emitted before (ids are deterministic), so it is
    never queued twice. Part of the batch transaction: killed before the commit, none
    is recorded and the same ones are produced again by the replayed batch. Returns
    how many were new.
    """
    # One row per id, in emission order: `seq` is the publication order, per user.
    unique: dict[str, NewTransition] = {}
    for item in items:
        unique.setdefault(item.transition.id, item)
    if not unique:
        return 0
    if not db.is_sqlite:
        return await _record_on_postgresql(conn, list(unique.values()), now)
    rows: list[dict[str, object]] = [
        {
            "id": item.transition.id,
            "user_id": item.transition.subject,
            "subject": item.transition.subject,
            "kind": item.transition.kind.value,
            "occurred_at": item.transition.time,
            "body": item.transition.body,
        }
        for item in unique.values()
    ]
    # Ids already in the history were emitted before (the user rows are locked, so no
    # other transaction can be adding them now): they are neither stored nor queued again.
    emitted = await _known_ids(conn, list(unique))
    new_ids = set(unique) - emitted
    statement = db.insert_ignoring_conflicts(transitions)
    for chunk in chunks((row for row in rows if row["id"] in new_ids), 1000):
        await conn.execute(statement, chunk)
    queued: list[dict[str, object]] = [
        {
            "transition_id": tid,
            "partition": item.partition,
            "created_at": now,
            "subject": item.transition.subject,
            "body": item.transition.body,
        }
        for tid, item in unique.items()
        if tid in new_ids
    ]
    for chunk in chunks(queued, 1000):
        await conn.execute(db.insert_ignoring_conflicts(outbox), chunk)
    return len(queued)


# PostgreSQL, when an id of the batch is already in the history: one statement, one
# round trip, whatever the count. The history insert returns the ids it added (an id
# already there was emitted before and is skipped, as a concurrent insert of it is
# waited for and then skipped); only those are queued, in emission order (`n`), so
# `seq` keeps the publication order per user. The history is never pruned, so a newly
# added id cannot be in the outbox yet: a plain INSERT there. The arrays are unnested
# twice rather than once into a CTE: a CTE of the bodies would be materialised
# (written to a tuple store, spilling past work_mem) and sorted again.
_PG_RECORD = """
WITH added AS (
    INSERT INTO stage_engine_transitions (id, user_id, subject, kind, occurred_at, body)
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[]
    )
    ON CONFLICT DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO stage_engine_outbox (transition_id, partition, created_at, subject, body)
    SELECT r.id, r.partition, $8, r.subject, r.body
    FROM unnest($1::text[], $7::int[], $3::text[], $6::bytea[])
        WITH ORDINALITY AS r(id, partition, subject, body, n)
    WHERE r.id IN (SELECT id FROM added)
    ORDER BY r.n
    RETURNING 1
)
SELECT count(*) FROM queued
"""


_HISTORY_COLUMNS = ["id", "user_id", "subject", "kind", "occurred_at", "body"]
_OUTBOX_COLUMNS = ["transition_id", "partition", "created_at", "subject", "body"]


async def _record_on_postgresql(
    conn: AsyncConnection, items: list[NewTransition], now: datetime
) -> int:
    """COPY both tables, the usual case; the statement above when an id is not new.

    COPY writes rows at a third of the cost of inserting them from unnested arrays
    (bench-stage's timer rounds spent most of their database time in that insert), but
    it cannot skip a row. So both COPYs run under a savepoint: an id already in the
    history (emitted before) raises a unique violation, the savepoint is rolled back,
    and the whole batch goes through the skipping statement instead. A concurrent
    insert of the same id is waited for by either path. The outbox's `seq` follows
    the COPY's row order, which is emission order.
    """
    records = [item.transition for item in items]
    driver = await driver_connection(conn)
    try:
        async with conn.begin_nested():
            await driver.copy_records_to_table(
                "stage_engine_transitions",
                columns=_HISTORY_COLUMNS,
                # a new transition joins its subject's history; a StrEnum kind is its value
                records=[(t.id, t.subject, t.subject, t.kind, t.time, t.body) for t in records],
            )
            await driver.copy_records_to_table(
                "stage_engine_outbox",
                columns=_OUTBOX_COLUMNS,
                records=[
                    (t.id, item.partition, now, t.subject, t.body)
                    for item, t in zip(items, records, strict=True)
                ],
            )
        return len(items)
    except asyncpg.UniqueViolationError:
        pass  # rolled back to the savepoint: nothing of the COPYs remains
    return await _record_skipping_known(conn, items, now)


async def _record_skipping_known(
    conn: AsyncConnection, items: list[NewTransition], now: datetime
) -> int:
    records = [item.transition for item in items]
    result = await conn.exec_driver_sql(
        _PG_RECORD,
        (
            [t.id for t in records],
            [t.subject for t in records],  # a new transition is its subject's history
            [t.subject for t in records],
            [t.kind.value for t in records],
            [t.time for t in records],
            [t.body for t in records],
            [item.partition for item in items],
            now,
        ),
    )
    return int(result.scalar_one())


async def _known_ids(conn: AsyncConnection, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for chunk in chunks(ids):
        query = select(transitions.c.id).where(among(conn, transitions.c.id, chunk))
        known.update((await conn.execute(query)).scalars())
    return known


async def move_history(conn: AsyncConnection, moves: Mapping[str, str]) -> None:
    """A merged-away profile's history now belongs to the profile it joined (in the
    merge's transaction: killed before its commit, nothing moved and the merge is redone)."""
    if not moves:
        return
    statement = (
        update(transitions)
        .where(transitions.c.user_id == bindparam("old_user_id"))
        .values(user_id=bindparam("new_user_id"))
    )
    await conn.execute(
        statement,
        [{"old_user_id": old, "new_user_id": new} for old, new in sorted(moves.items())],
    )


async def pending_transitions(
    conn: AsyncConnection, partitions: Collection[int], limit: int
) -> list[PendingTransition]:
    """The oldest outbox rows of `partitions`, in publication order."""
    if not partitions:
        return []
    query = (
        select(outbox.c.seq, outbox.c.transition_id, outbox.c.subject, outbox.c.body)
        .where(outbox.c.partition.in_(sorted(partitions)))
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    return [PendingTransition(*row) for row in (await conn.execute(query)).all()]


# PostgreSQL: the relay's round in one statement: the oldest rows of the partitions are
# deleted and returned with their keys and bodies, in publication order. Run in the transaction
# that commits only once Kafka acknowledged them (relay.py). `= ANY(ARRAY(...))` makes
# the delete probe the primary key per row; as `IN (...)` it was planned as a hash
# semi-join over a scan of the whole outbox, a cost that grew with the backlog.
_PG_TAKE = """
WITH taken AS (
    DELETE FROM stage_engine_outbox
    WHERE seq = ANY(ARRAY(
        SELECT seq FROM stage_engine_outbox
        WHERE partition = ANY($1::int[])
        ORDER BY seq
        LIMIT $2
    ))
    RETURNING seq, transition_id, subject, body
)
SELECT seq, transition_id, subject, body FROM taken ORDER BY seq
"""


async def take_pending(
    conn: AsyncConnection, partitions: Collection[int], limit: int
) -> list[PendingTransition]:
    """PostgreSQL: delete and return the oldest outbox rows of `partitions`, in
    publication order. Killed before the transaction commits: the rows are still there."""
    if not partitions:
        return []
    # asyncpg directly: no error of this statement is one to retry (see driver_connection)
    driver = await driver_connection(conn)
    return [
        PendingTransition(*row) for row in await driver.fetch(_PG_TAKE, sorted(partitions), limit)
    ]


async def oldest_pending_at(conn: AsyncConnection, partitions: Collection[int]) -> datetime | None:
    if not partitions:
        return None
    query = select(func.min(outbox.c.created_at)).where(outbox.c.partition.in_(sorted(partitions)))
    oldest: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return oldest


async def drop_sent(conn: AsyncConnection, seqs: Collection[int]) -> None:
    """Remove published rows (Kafka acknowledged them). Killed before the commit: the
    rows stay, and the next owner's recovery finds them in the topic and drops them."""
    for chunk in chunks(sorted(seqs)):
        await conn.execute(delete(outbox).where(among(conn, outbox.c.seq, chunk)))


async def drop_sent_ids(conn: AsyncConnection, transition_ids: Collection[str]) -> int:
    """Remove rows whose transitions are already in the topic (found by recovery).

    A scan of the outbox per chunk of ids (transition_id has no index: every
    transition would pay for one, and this runs only when partitions are taken over);
    the outbox is bounded by STAGE_OUTBOX_MAX_BACKLOG."""
    removed = 0
    for chunk in chunks(sorted(transition_ids)):
        result = await conn.execute(
            delete(outbox).where(among(conn, outbox.c.transition_id, chunk))
        )
        removed += int(result.rowcount)
    return removed


async def outbox_backlog(conn: AsyncConnection, partitions: Collection[int]) -> int:
    """Rows waiting in the outbox for `partitions`."""
    if not partitions:
        return 0
    query = (
        select(func.count()).select_from(outbox).where(outbox.c.partition.in_(sorted(partitions)))
    )
    return int((await conn.execute(query)).scalar_one())
