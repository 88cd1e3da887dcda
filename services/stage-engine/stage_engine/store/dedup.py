"""messageIds applied within the dedup window: a redelivered or re-sent event is dropped."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.store.database import Database, among, chunks
from stage_engine.store.tables import seen_messages


@dataclass(frozen=True, slots=True)
class SeenMessage:
    message_id: str
    partition: int
    received_at: datetime


async def already_seen(conn: AsyncConnection, message_ids: Collection[str]) -> set[str]:
    seen: set[str] = set()
    for chunk in chunks(message_ids):
        query = select(seen_messages.c.message_id).where(
            among(conn, seen_messages.c.message_id, chunk)
        )
        seen.update((await conn.execute(query)).scalars())
    return seen


async def remember(conn: AsyncConnection, db: Database, messages: Sequence[SeenMessage]) -> None:
    """Record the batch's messageIds; part of the batch transaction (killed before the
    commit, they are not recorded and the batch is applied again, once)."""
    if not messages:
        return
    rows = [
        {"message_id": m.message_id, "partition": m.partition, "received_at": m.received_at}
        for m in messages
    ]
    statement = db.insert_ignoring_conflicts(seen_messages)
    for chunk in chunks(rows, 1000):
        await conn.execute(statement, chunk)


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
