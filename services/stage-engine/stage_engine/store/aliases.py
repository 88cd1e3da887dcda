"""Aliases: an anonymous id (or a merged-away user id) -> the user profile it joined."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.store.database import Database, among, chunks
from stage_engine.store.tables import aliases


async def resolve_aliases(conn: AsyncConnection, keys: Collection[str]) -> dict[str, str]:
    """The keys among `keys` that are aliases, each with the user id it points to."""
    found: dict[str, str] = {}
    for chunk in chunks(sorted(set(keys))):
        query = select(aliases.c.alias, aliases.c.user_id).where(
            among(conn, aliases.c.alias, chunk)
        )
        found.update({row[0]: row[1] for row in (await conn.execute(query)).all()})
    return found


async def add_aliases(
    conn: AsyncConnection, db: Database, targets: Mapping[str, str], *, now: datetime
) -> None:
    """Point each alias at its user; existing aliases are re-pointed.

    Part of the batch transaction: killed before the commit, the merge did not happen
    and is redone when the batch is consumed again.
    """
    if not targets:
        return
    rows = [
        {"alias": alias, "user_id": user_id, "created_at": now}
        for alias, user_id in sorted(targets.items())
    ]
    statement = db.upsert(aliases, key=["alias"], update=["user_id"])
    for chunk in chunks(rows, 1000):
        await conn.execute(statement, chunk)


async def repoint_aliases(conn: AsyncConnection, moves: Mapping[str, str]) -> None:
    """Aliases that pointed at a profile merged away now point at the profile it joined,
    so chains never form (an alias always resolves in one lookup). In the merge's
    transaction: killed before its commit, nothing moved and the merge is redone."""
    if not moves:
        return
    statement = (
        update(aliases)
        .where(aliases.c.user_id == bindparam("old_user_id"))
        .values(user_id=bindparam("new_user_id"))
    )
    await conn.execute(
        statement,
        [{"old_user_id": old, "new_user_id": new} for old, new in sorted(moves.items())],
    )
