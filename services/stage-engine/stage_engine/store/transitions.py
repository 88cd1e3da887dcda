"""Transitions: the history of every user, which is also the outbox the relay publishes.

A transition is queued as the next seq of its partition (outbox_heads) in the
transaction that records it, and is published once its partition's cursor
(outbox_cursors) passes it. tables.py says why seqs commit in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, cast

import asyncpg
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.lifecycle.emit import Emitted
from stage_engine.store.database import Database, among, chunks, driver_connection
from stage_engine.store.tables import outbox_cursors, outbox_heads, transitions

_new_tuple = tuple.__new__


class NewTransition(NamedTuple):
    """A NamedTuple: made once per fired timer, at a third of a dataclass's cost."""

    transition: Emitted
    partition: int  # the owning user row's partition: its owner relays it


class PendingTransition(NamedTuple):
    partition: int
    seq: int
    transition_id: str
    subject: str
    body: bytes


async def record_transitions(
    conn: AsyncConnection, db: Database, items: Sequence[NewTransition], *, now: datetime
) -> int:
    """Add the transitions to the history, each queued as the next seq of its partition.

    An id already in the history was emitted before (ids are deterministic), so it is
    never queued twice. Part of the batch transaction: killed before the commit, none
    is recorded, no seq is taken, and the same ones are produced again by the replayed
    batch. Returns how many were new. `now` is the rows' `queued_at` on SQLite;
    PostgreSQL takes its own clock's (the column's default).
    """
    # One row per id, in emission order: seqs follow it, so one user's transitions are
    # published in the order they were made.
    unique: dict[str, NewTransition] = {}
    for item in items:
        unique.setdefault(item.transition.id, item)
    if not unique:
        return 0
    if not db.is_sqlite:
        return await _record_on_postgresql(conn, list(unique.values()))
    # SQLite: the database's single write lock serialises writers; ids already in the
    # history (the user rows are locked, so no other transaction can be adding them).
    emitted = await _known_ids(conn, list(unique))
    new = [item for tid, item in unique.items() if tid not in emitted]
    if not new:
        return 0
    seqs = await _reserve_on_sqlite(conn, new)
    rows: list[dict[str, object]] = [
        {
            "id": item.transition.id,
            "user_id": item.transition.subject,
            "subject": item.transition.subject,
            "kind": item.transition.kind.value,
            "occurred_at": item.transition.time,
            "body": item.transition.body,
            "partition": item.partition,
            "seq": seq,
            "queued_at": now,
        }
        for item, seq in zip(new, seqs, strict=True)
    ]
    for chunk in chunks(rows, 1000):
        await conn.execute(transitions.insert(), chunk)
    return len(rows)


# The next seqs of the partitions a transaction queues for. Rows are taken in partition
# order, so two transactions queuing for overlapping partitions wait for each other
# rather than deadlock. The row lock is held until commit: see tables.py.
_PG_RESERVE = """
INSERT INTO stage_engine_outbox_heads AS h (partition, queued_seq)
SELECT r.partition, r.n FROM unnest($1::int[], $2::bigint[]) AS r(partition, n)
ORDER BY r.partition
ON CONFLICT (partition) DO UPDATE SET queued_seq = h.queued_seq + excluded.queued_seq
RETURNING h.partition, h.queued_seq
"""


async def _reserve(conn: AsyncConnection, items: Sequence[NewTransition]) -> list[int]:
    """PostgreSQL: a seq for each item, in item order per partition. Through SQLAlchemy,
    not asyncpg directly: a lock error here is wrapped, and so retried if retryable."""
    counts = Counter(item.partition for item in items)
    result = await conn.exec_driver_sql(_PG_RESERVE, (list(counts), list(counts.values())))
    heads: dict[int, int] = dict(cast("list[tuple[int, int]]", result.all()))
    return _number(items, {p: heads[p] - n for p, n in counts.items()})


async def _reserve_on_sqlite(conn: AsyncConnection, items: Sequence[NewTransition]) -> list[int]:
    counts = Counter(item.partition for item in items)
    query = select(outbox_heads.c.partition, outbox_heads.c.queued_seq).where(
        outbox_heads.c.partition.in_(sorted(counts))
    )
    heads: dict[int, int] = dict((await conn.execute(query)).all())
    for partition, n in sorted(counts.items()):
        if partition in heads:
            await conn.execute(
                update(outbox_heads)
                .where(outbox_heads.c.partition == partition)
                .values(queued_seq=heads[partition] + n)
            )
        else:
            await conn.execute(outbox_heads.insert().values(partition=partition, queued_seq=n))
    return _number(items, {p: heads.get(p, 0) for p in counts})


def _number(items: Sequence[NewTransition], last_before: dict[int, int]) -> list[int]:
    seqs: list[int] = []
    for item in items:
        seq = last_before[item.partition] + 1
        last_before[item.partition] = seq
        seqs.append(seq)
    return seqs


# PostgreSQL, when an id of the batch is already in the history: the history insert
# skips it (and waits for a concurrent insert of it, then skips it) and returns the
# ids it added; only those are given seqs, by a second statement.
_PG_INSERT_NEW = """
INSERT INTO stage_engine_transitions (id, user_id, subject, kind, occurred_at, body)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[]
)
ON CONFLICT DO NOTHING
RETURNING id
"""
_PG_QUEUE = """
UPDATE stage_engine_transitions AS t SET partition = r.partition, seq = r.seq
FROM unnest($1::text[], $2::int[], $3::bigint[]) AS r(id, partition, seq)
WHERE t.id = r.id
"""

_HISTORY_COLUMNS = ["id", "user_id", "subject", "kind", "occurred_at", "body", "partition", "seq"]


async def _record_on_postgresql(conn: AsyncConnection, items: list[NewTransition]) -> int:
    """COPY the history with the reserved seqs, the usual case; two statements when an
    id is not new.

    COPY writes rows at a third of the cost of inserting them from unnested arrays,
    but it cannot skip a row. So the reservation and the COPY run under a savepoint: an
    id already in the history (emitted before) raises a unique violation, the
    savepoint is rolled back (the reservation with it), and the batch goes through
    the skipping statements instead. `queued_at` is the server's default.
    """
    driver = await driver_connection(conn)
    try:
        async with conn.begin_nested():
            seqs = await _reserve(conn, items)
            records = []
            for item, seq in zip(items, seqs, strict=True):
                t = item.transition
                # a new transition joins its subject's history; a StrEnum kind is its value
                records.append(
                    (t.id, t.subject, t.subject, t.kind, t.time, t.body, item.partition, seq)
                )
            await driver.copy_records_to_table(
                "stage_engine_transitions", columns=_HISTORY_COLUMNS, records=records
            )
        return len(items)
    except asyncpg.UniqueViolationError:
        pass  # rolled back to the savepoint: nothing of the COPY or the reservation remains
    return await _record_skipping_known(conn, driver, items)


async def _record_skipping_known(
    conn: AsyncConnection, driver: asyncpg.Connection, items: list[NewTransition]
) -> int:
    records = [item.transition for item in items]
    added = {
        row[0]
        for row in await driver.fetch(
            _PG_INSERT_NEW,
            [t.id for t in records],
            [t.subject for t in records],  # a new transition is its subject's history
            [t.subject for t in records],
            [t.kind.value for t in records],
            [t.time for t in records],
            [t.body for t in records],
        )
    }
    new = [item for item in items if item.transition.id in added]
    if not new:
        return 0
    seqs = await _reserve(conn, new)
    await driver.execute(
        _PG_QUEUE, [item.transition.id for item in new], [item.partition for item in new], seqs
    )
    return len(new)


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


async def ensure_cursors(conn: AsyncConnection, db: Database, partitions: Collection[int]) -> None:
    """A cursor row for each of `partitions` (at 0, before any publication), made when
    the partitions are taken, so that a relay round never has to write one."""
    if partitions:
        await conn.execute(
            db.insert_ignoring_conflicts(outbox_cursors),
            [{"partition": p, "published_seq": 0} for p in sorted(partitions)],
        )


class Cursor(NamedTuple):
    """Where a partition's outbox stands."""

    published: int  # the last seq Kafka acknowledged
    queued: int  # the last seq reserved (0 before the first)

    @property
    def waiting(self) -> int:
        return self.queued - self.published


async def lock_cursors(
    conn: AsyncConnection, db: Database, partitions: Collection[int]
) -> dict[int, Cursor]:
    """The cursor of each of `partitions` that has a cursor row, with its queue head.

    A partition without one is left out (it is not relayed until ensure_cursors made
    it). PostgreSQL: the cursor rows are locked until the transaction ends, so a second
    relay of a partition (its old owner, before it noticed the handover) waits for this
    round's commit and reads the moved cursor, instead of publishing the same rows.
    The heads are read, not locked: a writer reserving seqs meanwhile is not held up.
    """
    if not partitions:
        return {}
    query = (
        select(
            outbox_cursors.c.partition,
            outbox_cursors.c.published_seq,
            func.coalesce(outbox_heads.c.queued_seq, 0),
        )
        .select_from(
            outbox_cursors.outerjoin(
                outbox_heads, outbox_heads.c.partition == outbox_cursors.c.partition
            )
        )
        .where(among(conn, outbox_cursors.c.partition, sorted(partitions)))
        .order_by(outbox_cursors.c.partition)
    )
    if not db.is_sqlite:
        query = query.with_for_update(of=outbox_cursors)
    return {
        partition: Cursor(published, queued)
        for partition, published, queued in (await conn.execute(query)).all()
    }


# Per partition, the first `take` rows past its cursor, in seq order: an index range
# scan each.
_PG_PENDING = """
SELECT q.partition, q.seq, q.id, q.subject, q.body
FROM unnest($1::int[], $2::bigint[], $3::int[]) AS c(partition, after, take)
CROSS JOIN LATERAL (
    SELECT partition, seq, id, subject, body FROM stage_engine_transitions
    WHERE partition = c.partition AND seq > c.after
    ORDER BY seq
    LIMIT c.take
) AS q
"""


async def pending_transitions(
    conn: AsyncConnection, takes: Mapping[int, tuple[int, int]]
) -> list[PendingTransition]:
    """For each partition -> (after, take): the first `take` rows past seq `after`, in
    seq order within a partition."""
    if not takes:
        return []
    if conn.dialect.name == "postgresql":
        driver = await driver_connection(conn)
        partitions = list(takes)
        records = await driver.fetch(
            _PG_PENDING,
            partitions,
            [takes[p][0] for p in partitions],
            [takes[p][1] for p in partitions],
        )
        # the record's values in the NamedTuple's order, without binding its arguments
        return [_new_tuple(PendingTransition, record) for record in records]
    found: list[PendingTransition] = []
    for partition, (after, take) in sorted(takes.items()):
        query = (
            select(
                transitions.c.partition,
                transitions.c.seq,
                transitions.c.id,
                transitions.c.subject,
                transitions.c.body,
            )
            .where(transitions.c.partition == partition, transitions.c.seq > after)
            .order_by(transitions.c.seq)
            .limit(take)
        )
        found.extend(PendingTransition(*row) for row in (await conn.execute(query)).all())
    return found


async def mark_published(conn: AsyncConnection, published: Mapping[int, int]) -> None:
    """Move each partition's cursor to the seq Kafka acknowledged (never backwards).

    Killed before the commit: the cursors stay, and the rows past them that are already
    in the topic are found there by the next owner's recovery and skipped."""
    if not published:
        return
    statement = (
        update(outbox_cursors)
        .where(
            outbox_cursors.c.partition == bindparam("p"),
            outbox_cursors.c.published_seq < bindparam("seq"),
        )
        .values(published_seq=bindparam("seq"))
    )
    await conn.execute(statement, [{"p": p, "seq": seq} for p, seq in sorted(published.items())])


async def _published_seqs(conn: AsyncConnection, partitions: Collection[int]) -> dict[int, int]:
    """Each partition's cursor; a partition without a cursor row has published nothing."""
    query = select(outbox_cursors.c.partition, outbox_cursors.c.published_seq).where(
        outbox_cursors.c.partition.in_(sorted(partitions))
    )
    found: dict[int, int] = dict(cast("list[tuple[int, int]]", (await conn.execute(query)).all()))
    return {partition: found.get(partition, 0) for partition in partitions}


async def oldest_pending_at(conn: AsyncConnection, partitions: Collection[int]) -> datetime | None:
    """When the first row past each cursor was queued; the earliest of them.

    A partition's first waiting row bounds all of its waiting rows: seqs commit in
    order, so none of them was committed (let alone published) before that row's
    transaction began."""
    oldest: datetime | None = None
    for partition, cursor in sorted((await _published_seqs(conn, partitions)).items()):
        query = (
            select(transitions.c.queued_at)
            .where(transitions.c.partition == partition, transitions.c.seq > cursor)
            .order_by(transitions.c.seq)
            .limit(1)
        )
        queued: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        if queued is not None and (oldest is None or queued < oldest):
            oldest = queued
    return oldest


async def pending_among(
    conn: AsyncConnection, partitions: Collection[int], transition_ids: Collection[str]
) -> set[str]:
    """Which of `transition_ids` are queued for `partitions` and not yet past the cursor."""
    found: set[str] = set()
    if not partitions:
        return found
    cursors = await _published_seqs(conn, partitions)
    for chunk in chunks(sorted(transition_ids)):
        query = select(transitions.c.id, transitions.c.partition, transitions.c.seq).where(
            among(conn, transitions.c.id, chunk)
        )
        for tid, partition, seq in (await conn.execute(query)).all():
            if partition in cursors and seq is not None and seq > cursors[partition]:
                found.add(tid)
    return found


async def outbox_backlog(conn: AsyncConnection, partitions: Collection[int]) -> int:
    """Rows waiting to be published for `partitions`: two rows a partition are read."""
    if not partitions:
        return 0
    joined = outbox_heads.outerjoin(
        outbox_cursors, outbox_cursors.c.partition == outbox_heads.c.partition
    )
    query = (
        select(
            func.coalesce(
                func.sum(
                    outbox_heads.c.queued_seq - func.coalesce(outbox_cursors.c.published_seq, 0)
                ),
                0,
            )
        )
        .select_from(joined)
        .where(outbox_heads.c.partition.in_(sorted(partitions)))
    )
    return int((await conn.execute(query)).scalar_one())
