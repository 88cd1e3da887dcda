"""messageIds applied within the dedup window: a redelivered or re-sent event is dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.store.database import Database, chunks
from stage_engine.store.tables import seen_messages


@dataclass(frozen=True, slots=True)
class SeenMessage:
    message_id: str
    partition: int
    received_at: datetime


async def remember_new(
    conn: AsyncConnection, db: Database, messages: Sequence[SeenMessage]
) -> set[str]:
    """Record the messageIds and return those not seen before: one statement (per 1000
    on SQLite).

    Part of the batch transaction: killed before the commit, none is recorded and the
    replayed batch finds them new again (and applies them once).
    """
    if not messages:
        return set()
    if not db.is_sqlite:
        result = await conn.exec_driver_sql(
            _PG_REMEMBER,
            (
                [m.message_id for m in messages],
                [m.partition for m in messages],
                [m.received_at for m in messages],
            ),
        )
        return {message_id for (message_id,) in result.all()}
    rows = [
        {"message_id": m.message_id, "partition": m.partition, "received_at": m.received_at}
        for m in messages
    ]
    statement = db.insert_ignoring_conflicts(seen_messages).returning(seen_messages.c.message_id)
    new: set[str] = set()
    for chunk in chunks(rows, 1000):
        new.update((await conn.execute(statement, chunk)).scalars())
    return new


# PostgreSQL: one statement whatever the count, so one prepared statement; a multi-row
# VALUES list is new SQL text for each batch size, prepared (a round trip) each time.
_PG_REMEMBER = """
INSERT INTO stage_engine_seen_messages (message_id, partition, received_at)
SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING message_id
"""


async def forget_older_than(
    conn: AsyncConnection, *, partition: int, horizon: datetime, limit: int
) -> int:
    """Delete up to `limit` ids of `partition` received before `horizon`; how many went.

    Killed right after the commit: those ids are gone (as intended); before: they stay
    until the next round.
    """
    oldest = (
        select(seen_messages.c.message_id)
        .where(seen_messages.c.partition == partition, seen_messages.c.received_at < horizon)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(seen_messages).where(seen_messages.c.message_id.in_(oldest)))
    return int(result.rowcount)
