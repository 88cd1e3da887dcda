"""GET /v1/reports/recall: per rule and channel, treated vs held out, reactivated within a window.

A user counts once per (rule, channel, group): treated when not in the rule's
holdout (intent to treat: whether or not consent, caps or a failure kept the
message from going), held out otherwise. A user counts as reactivated when a
`reactivated` transition followed one of their matching transitions within the
window. lift = treated_rate / held_out_rate - 1 (None without a held-out rate);
uplift_points = treated_rate - held_out_rate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, case, distinct, exists, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.store import tables as t


class RecallRow(BaseModel):
    rule: str
    channel: str
    treated: int
    held_out: int
    treated_reactivated: int
    held_out_reactivated: int
    treated_rate: float | None
    held_out_rate: float | None
    lift: float | None
    uplift_points: float | None


class RecallReport(BaseModel):
    window_days: int
    rows: list[RecallRow]


async def recall_report(conn: AsyncConnection, *, window_days: int) -> RecallReport:
    a = t.actions.c
    r = t.reactivations.c
    reactivated = exists().where(
        r.user_id == a.user_id,
        r.reactivated_at > a.transition_at,
        _within(conn, r.reactivated_at, a.transition_at, timedelta(days=window_days)),
    )
    query = (
        select(
            a.rule,
            a.channel,
            a.in_holdout,
            func.count(distinct(a.user_id)).label("users"),
            func.count(distinct(case((reactivated, a.user_id)))).label("reactivated"),
        )
        .group_by(a.rule, a.channel, a.in_holdout)
        .order_by(a.rule, a.channel)
    )
    groups: dict[tuple[str, str], dict[bool, tuple[int, int]]] = {}
    for row in await conn.execute(query):
        groups.setdefault((row.rule, row.channel), {})[bool(row.in_holdout)] = (
            row.users,
            row.reactivated,
        )
    return RecallReport(
        window_days=window_days,
        rows=[_row(rule, channel, arms) for (rule, channel), arms in groups.items()],
    )


def _within(
    conn: AsyncConnection, later: Any, earlier: Any, window: timedelta
) -> ColumnElement[bool]:
    """later <= earlier + window, in each backend's date arithmetic."""
    if conn.dialect.name == "sqlite":
        days = window.total_seconds() / 86_400
        return and_(func.julianday(later) <= func.julianday(earlier) + days)
    seconds = int(window.total_seconds())
    return and_(later <= earlier + literal_column(f"interval '{seconds} seconds'"))


def _row(rule: str, channel: str, arms: dict[bool, tuple[int, int]]) -> RecallRow:
    treated, treated_reactivated = arms.get(False, (0, 0))
    held_out, held_out_reactivated = arms.get(True, (0, 0))
    treated_rate = treated_reactivated / treated if treated else None
    held_out_rate = held_out_reactivated / held_out if held_out else None
    both = treated_rate is not None and held_out_rate is not None
    return RecallRow(
        rule=rule,
        channel=channel,
        treated=treated,
        held_out=held_out,
        treated_reactivated=treated_reactivated,
        held_out_reactivated=held_out_reactivated,
        treated_rate=treated_rate,
        held_out_rate=held_out_rate,
        lift=treated_rate / held_out_rate - 1 if both and held_out_rate else None,  # type: ignore[operator]
        uplift_points=treated_rate - held_out_rate if both else None,  # type: ignore[operator]
    )
