"""Consumed offsets per events partition, stored with the states they produced.

Fencing: a batch moves a partition's offset from the offset it started at to the one
after its last record, and only if the stored offset still is the start. An engine that
lost the partition without noticing (a zombie) finds another owner moved it, and its
whole transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, bindparam, case, literal, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.errors import LifecycleError
from stage_engine.store.database import Database
from stage_engine.store.tables import offsets
from stage_engine.store.types import UtcDateTime


class FencedError(LifecycleError):
    """The stored offset is not where this batch started: another engine owns the partition."""

    def __init__(self, topic: str, partition: int, expected: int) -> None:
        self.partition = partition
        super().__init__(
            f"offset of {topic}[{partition}] is no longer {expected}: "
            "another engine consumed it; this batch is rolled back"
        )


async def _move_all(conn: AsyncConnection, topic: str, moves: list[OffsetMove]) -> None:
    if not moves:
        return
    result = await conn.execute(
        _MOVE_ALL,
        {
            "topic": topic,
            "partitions": [m.partition for m in moves],
            "starts": [m.start for m in moves],
            "ends": [m.end for m in moves],
            "times": [m.max_event_time for m in moves],
        },
    )
    moved = set(result.scalars())
    for move in moves:
        if move.partition not in moved:
            raise FencedError(topic, move.partition, move.start)


@dataclass(frozen=True, slots=True)
class StoredOffset:
    next_offset: int
    max_event_time: datetime | None


@dataclass(frozen=True, slots=True)
class OffsetMove:
    partition: int
    start: int  # the stored offset this batch started from
    end: int  # the offset after the batch's last record
    max_event_time: datetime | None  # the highest event time in the batch


async def load_offsets(
    conn: AsyncConnection, topic: str, partitions: Collection[int]
) -> dict[int, StoredOffset]:
    query = select(offsets.c.partition, offsets.c.next_offset, offsets.c.max_event_time).where(
        offsets.c.topic == topic, offsets.c.partition.in_(sorted(partitions))
    )
    return {
        partition: StoredOffset(next_offset, max_event_time)
        for partition, next_offset, max_event_time in (await conn.execute(query)).all()
    }


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """A stored offset past its partition's log end, and where reading starts again."""

    partition: int
    stored: int  # the offset the database held
    log_end: int  # the partition's end offset when it was assigned
    beginning: int  # the partition's beginning offset: the new next offset


def beyond_log_end(
    stored: Mapping[int, StoredOffset], ends: Mapping[int, int], beginnings: Mapping[int, int]
) -> list[OffsetReset]:
    """The partitions whose stored offset lies past the log's end.

    Nothing this engine applied can lie past the end: the log was truncated or lost
    (the topic deleted and recreated, a broker's data lost). Read from its end on,
    every record the new log gets before reaching the stored offset would be taken
    for an applied one and skipped. So the policy: read the new log from its start.
    """
    return [
        OffsetReset(partition, offset.next_offset, ends[partition], beginnings[partition])
        for partition, offset in sorted(stored.items())
        if partition in ends and offset.next_offset > ends[partition]
    ]


async def reset_offsets(conn: AsyncConnection, topic: str, resets: Collection[OffsetReset]) -> None:
    """Move each stored offset back to its partition's beginning, fenced on the value read.

    Killed right after (before the commit): the offsets stay past the end and the next
    assignment finds and resets them again. After the commit: the partitions are read
    from their beginning; the dedup window drops what was already applied.
    """
    for reset in sorted(resets, key=lambda r: r.partition):
        statement = (
            update(offsets)
            .where(
                offsets.c.topic == topic,
                offsets.c.partition == reset.partition,
                offsets.c.next_offset == reset.stored,
            )
            .values(next_offset=reset.beginning)
        )
        await conn.execute(statement)


async def create_missing_offsets(
    conn: AsyncConnection, db: Database, topic: str, starts: Mapping[int, int]
) -> None:
    """A partition consumed for the first time starts at its beginning offset.

    Killed right after: the rows exist; the next assignment reads them, the same values.
    """
    if not starts:
        return
    rows = [
        {"topic": topic, "partition": partition, "next_offset": start, "max_event_time": None}
        for partition, start in sorted(starts.items())
    ]
    await conn.execute(db.insert_ignoring_conflicts(offsets), rows)


# PostgreSQL: every partition of a batch in one statement (one round trip), fenced per row.
_MOVE_ALL = text(
    """
    UPDATE stage_engine_offsets AS o
    SET next_offset = v.end_offset,
        max_event_time = CASE
            WHEN v.max_event_time IS NOT NULL
                 AND (o.max_event_time IS NULL OR o.max_event_time < v.max_event_time)
            THEN v.max_event_time ELSE o.max_event_time END
    FROM unnest(:partitions, :starts, :ends, :times)
        AS v(partition, start_offset, end_offset, max_event_time)
    WHERE o.topic = :topic AND o.partition = v.partition AND o.next_offset = v.start_offset
    RETURNING o.partition
    """
).bindparams(
    bindparam("partitions", type_=postgresql.ARRAY(Integer)),
    bindparam("starts", type_=postgresql.ARRAY(BigInteger)),
    bindparam("ends", type_=postgresql.ARRAY(BigInteger)),
    bindparam("times", type_=postgresql.ARRAY(DateTime(timezone=True))),
)


async def move_offsets(conn: AsyncConnection, topic: str, moves: Collection[OffsetMove]) -> None:
    """Store each partition's next offset (and watermark base), fenced; raise FencedError.

    Runs last in the batch's transaction. Killed before the commit: nothing of the batch
    is stored and it is consumed again from `start`. Killed after: the batch is done,
    the engine resumes at `end`.
    """
    ordered = sorted(moves, key=lambda move: move.partition)
    if conn.dialect.name == "postgresql":
        await _move_all(conn, topic, ordered)
        return
    for move in ordered:
        values: dict[str, object] = {"next_offset": move.end}
        if move.max_event_time is not None:
            values["max_event_time"] = case(
                (
                    offsets.c.max_event_time.is_(None)
                    | (offsets.c.max_event_time < move.max_event_time),
                    literal(move.max_event_time, UtcDateTime()),
                ),
                else_=offsets.c.max_event_time,
            )
        statement = (
            update(offsets)
            .where(
                offsets.c.topic == topic,
                offsets.c.partition == move.partition,
                offsets.c.next_offset == move.start,
            )
            .values(values)
        )
        result = await conn.execute(statement)
        if result.rowcount != 1:
            raise FencedError(topic, move.partition, move.start)
