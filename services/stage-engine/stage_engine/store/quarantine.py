"""Stored user rows that can no longer be read are moved aside, not fatal.

A row that lifecycle/stored.py refuses (written by a bug, edited by hand, a number
stored as null) would fail every batch and timer round that reads it, for ever. The
transaction that meets one moves it to `stage_engine_quarantine` with the error and
deletes it from the users table; the user then starts afresh as if new. Killed before
that transaction commits: the row is still in place and is met again. The caller
counts and logs the quarantined ids (never the state: it holds contact traits).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from stage_engine.store.tables import quarantine, users

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    user_id: str
    partition: int
    state: str
    error: str


async def move_to_quarantine(
    conn: AsyncConnection, rows: Sequence[UnreadableRow], *, now: datetime
) -> None:
    """In the caller's transaction: the rows leave the users table for the quarantine."""
    if not rows:
        return
    await conn.execute(
        insert(quarantine),
        [
            {
                "user_id": row.user_id,
                "partition": row.partition,
                "state": row.state,
                "error": row.error,
                "quarantined_at": now,
            }
            for row in rows
        ],
    )
    await conn.execute(delete(users).where(users.c.user_id.in_([row.user_id for row in rows])))
    for row in rows:
        log.error(
            "unreadable user row quarantined",
            extra={"user_id": row.user_id, "partition": row.partition, "error": row.error},
        )
