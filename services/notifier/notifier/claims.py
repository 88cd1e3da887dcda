"""Claiming due actions with a lease, and what a sender needs to execute them."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Update,
    bindparam,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.records import ActionRef
from notifier.store import tables as t
from notifier.store.dialect import one_of
from shared.notifications import Coupon

COUPON = "coupon"


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed action. `attempt` (the claim's number) fences its result."""

    action_id: int
    ref: ActionRef
    params: dict[str, Any]
    in_holdout: bool
    idempotency_key: str
    attempt: int
    lease_until: datetime  # wall time
    transition_payload: bytes
    coupon: Coupon | None  # issued by an earlier action of the same rule
    suppressed_channels: frozenset[str]


async def claim_due(
    conn: AsyncConnection,
    *,
    limit: int,
    policy_now: datetime,
    wall_now: datetime,
    lease: timedelta,
) -> list[Job]:
    """Lease up to `limit` due actions and load their context, in the caller's transaction.

    An action waits while an earlier coupon action of its rule is pending, so the
    message carries the coupon. SKIP LOCKED lets replicas claim side by side.
    Killed after the commit: the leased actions are claimed again once the lease
    lapses, with the same idempotency key.
    """
    # SQLite compiles RETURNING without table names, so a correlated subquery there
    # scans its whole table per row (a claim of 32 took 140 ms against 1 ms with
    # 6,000 transitions) and `user_id = user_id` compares the suppression row to
    # itself: on SQLite the context is looked up after the claim instead.
    lite = conn.dialect.name == "sqlite"
    claimed = await conn.execute(
        _claim_statement(context_in_returning=not lite),
        {
            "b_limit": limit,
            "b_policy_now": policy_now,
            "b_wall_now": wall_now,
            "b_lease_until": wall_now + lease,
        },
    )
    rows = claimed.all()
    if not rows:
        return []
    # Only a later action of a rule can carry a coupon.
    coupons = await _coupons(
        conn, {row.transition_id for row in rows if row.position > 0 and row.channel != COUPON}
    )
    if lite:
        payloads = await _payloads(conn, {row.transition_id for row in rows})
        suppressed = await _suppressions(conn, {row.user_id for row in rows})
    else:
        payloads = {row.transition_id: row.payload for row in rows}
        suppressed = await _suppressions(conn, {row.user_id for row in rows if row.has_suppression})
    return [
        Job(
            action_id=row.id,
            ref=ActionRef(
                transition_id=row.transition_id,
                ledger_key=row.ledger_key,
                user_id=row.user_id,
                rule=row.rule,
                action=row.action,
                channel=row.channel,
            ),
            params=row.params,
            in_holdout=row.in_holdout,
            idempotency_key=row.idempotency_key,
            attempt=row.attempts,
            lease_until=wall_now + lease,
            # none: fails to decode, clearly
            transition_payload=bytes(payloads.get(row.transition_id) or b""),
            coupon=coupons.get((row.transition_id, row.rule)),
            suppressed_channels=frozenset(suppressed.get(row.user_id, ())),
        )
        for row in rows
    ]


@functools.cache
def _claim_statement(*, context_in_returning: bool) -> Update:
    """Built once: SQLAlchemy then reuses its cache key and compiled form every claim."""
    a = t.actions
    earlier = t.actions.alias("earlier")
    # `|| ''` keeps rule and channel out of the index choice, so the lookup goes by the
    # unique (transition_id, ledger_key) index: a few rows. Without statistics SQLite
    # took the (rule, channel, in_holdout) index for having more equality columns and
    # walked every action of the rule: 40-70 ms per claim at the end of a `make run`.
    unindexed: ColumnElement[str] = literal_column("''")
    coupon_pending = (
        select(literal(1))
        .where(
            earlier.c.transition_id == a.c.transition_id,
            earlier.c.rule.concat(unindexed) == a.c.rule,
            earlier.c.position < a.c.position,
            earlier.c.channel.concat(unindexed) == COUPON,
            earlier.c.status == t.PENDING,
        )
        .exists()
    )
    due = (
        select(a.c.id)
        .where(
            a.c.status == t.PENDING,
            a.c.due_at <= bindparam("b_policy_now"),
            a.c.not_before <= bindparam("b_wall_now"),
            ~coupon_pending,
        )
        .order_by(a.c.due_at)
        .limit(bindparam("b_limit", type_=Integer()))
        .with_for_update(skip_locked=True, of=a)
    )
    # The payload and whether the user has any suppression come back with the claim
    # (correlated subqueries in RETURNING): one round trip instead of three.
    tr, s = t.transitions.c, t.suppressions.c
    payload = select(tr.payload).where(tr.id == a.c.transition_id).scalar_subquery()
    has_suppression = select(literal(1)).where(s.user_id == a.c.user_id).exists()
    columns: list[ColumnElement[Any]] = [
        a.c.id,
        a.c.transition_id,
        a.c.ledger_key,
        a.c.user_id,
        a.c.rule,
        a.c.action,
        a.c.channel,
        a.c.params,
        a.c.in_holdout,
        a.c.idempotency_key,
        a.c.attempts,
        a.c.position,
    ]
    if context_in_returning:
        columns += [payload.label("payload"), has_suppression.label("has_suppression")]
    return (
        update(a)
        .where(a.c.id.in_(due.scalar_subquery()))
        .values(not_before=bindparam("b_lease_until"), attempts=a.c.attempts + 1)
        .returning(*columns)
    )


async def _payloads(conn: AsyncConnection, ids: set[str]) -> dict[str, bytes]:
    tr = t.transitions.c
    query = select(tr.id, tr.payload).where(one_of(conn, tr.id, ids))
    return {row.id: row.payload for row in await conn.execute(query)}


async def _coupons(conn: AsyncConnection, ids: set[str]) -> dict[tuple[str, str], Coupon]:
    if not ids:
        return {}
    c = t.coupons.c
    query = select(c.transition_id, c.rule, c.code, c.amount, c.currency, c.expires_at).where(
        one_of(conn, c.transition_id, ids)
    )
    return {
        (row.transition_id, row.rule): Coupon(
            code=row.code,
            amount=float(row.amount),
            currency=row.currency,
            expires_at=row.expires_at,
        )
        for row in await conn.execute(query)
    }


async def _suppressions(conn: AsyncConnection, users: set[str]) -> dict[str, set[str]]:
    if not users:
        return {}
    s = t.suppressions.c
    found: dict[str, set[str]] = defaultdict(set)
    for row in await conn.execute(
        select(s.user_id, s.channel).where(one_of(conn, s.user_id, users))
    ):
        found[row.user_id].add(row.channel)
    return found
