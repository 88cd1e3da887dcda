"""Read-side queries: the HTTP API and the gauges."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import CompoundSelect

from shared.transitions import Stage
from stage_engine.store.tables import aliases, transitions, users
from stage_engine.store.users import StoredUser, decode_state


async def find_user(conn: AsyncConnection, user_id: str) -> StoredUser | None:
    """The profile of `user_id`, following an alias (an anonymous id merged into a user)."""
    for key in (user_id, await _alias_target(conn, user_id)):
        if key is None:
            continue
        query = select(users.c.partition, users.c.state).where(users.c.user_id == key)
        row = (await conn.execute(query)).one_or_none()
        if row is not None:
            return StoredUser(decode_state(row.state), row.partition)
    return None


async def _alias_target(conn: AsyncConnection, key: str) -> str | None:
    query = select(aliases.c.user_id).where(aliases.c.alias == key)
    target: str | None = (await conn.execute(query)).scalar_one_or_none()
    return target


async def user_transitions(conn: AsyncConnection, user_id: str, *, limit: int) -> list[bytes]:
    """The encoded transitions of a profile, oldest first (the last `limit` of them)."""
    query = (
        select(transitions.c.body)
        .where(transitions.c.user_id == user_id)
        .order_by(transitions.c.occurred_at.desc(), transitions.c.id.desc())
        .limit(limit)
    )
    bodies = list((await conn.execute(query)).scalars())
    bodies.reverse()
    return bodies


async def users_per_stage(conn: AsyncConnection) -> dict[str, int]:
    query = select(users.c.stage, func.count()).group_by(users.c.stage)
    counts = {stage.value: 0 for stage in Stage}
    counts.update({stage: int(n) for stage, n in (await conn.execute(query)).all()})
    return counts


async def partitions_with_due_rows(conn: AsyncConnection, nows: Mapping[int, datetime]) -> set[int]:
    """Which partitions have a row due at their `now`: one statement, an index probe each.

    Each probe is the partition's earliest next_due_at, which PostgreSQL reads from the
    first entry of the (partition, next_due_at) index. As `EXISTS (... next_due_at <=
    now)` it was planned as a sequential scan whenever most rows were due (a match
    expected at once), which then walked past every row already fired: 50 ms per
    partition, the timer loop stalled 0.6 s per call in bench-stage.
    """
    if not nows:
        return set()
    return set((await conn.execute(due_partitions_statement(nows))).scalars())


def due_partitions_statement(nows: Mapping[int, datetime]) -> CompoundSelect[Any]:
    probes = [
        select(literal(partition).label("partition")).where(
            select(func.min(users.c.next_due_at))
            .where(users.c.partition == partition)
            .scalar_subquery()
            <= now
        )
        for partition, now in sorted(nows.items())
    ]
    return union_all(*probes)


async def due_count(conn: AsyncConnection, partition: int, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(users)
        .where(users.c.partition == partition, users.c.next_due_at <= now)
    )
    return int((await conn.execute(query)).scalar_one())
