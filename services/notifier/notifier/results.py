"""Recording what the senders did: one transaction per flush of results.

Per result, in that transaction: the action's new status (or its retry time),
the coupon it issued, its outcome in the outbox, and for an action given up on,
its dead letter. A result whose claim is stale (the lease lapsed and another
sender claimed the action again, so `attempts` moved on) is dropped: the newer
claim owns the action, and its send carries the same idempotency key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.claims import Job
from notifier.records import dead_letter_row, outcome_row
from notifier.store import tables as t
from notifier.store.dialect import insert_ignoring_conflicts, one_of_param
from shared.notifications import Coupon, OutcomeResult


class Verdict(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # consent withdrawn after planning
    RETRY = "retry"  # transient failure, another attempt at `retry_at`
    FAILED = "failed"  # permanent, or out of attempts: dead-lettered


@dataclass(frozen=True, slots=True)
class Result:
    job: Job
    verdict: Verdict
    occurred_at: datetime  # policy clock
    reason: str | None = None
    provider_message_id: str | None = None
    coupon: Coupon | None = None
    retry_at: datetime | None = None  # wall clock, for RETRY


_OUTCOME_OF = {
    Verdict.SENT: OutcomeResult.SENT,
    Verdict.SKIPPED: OutcomeResult.SKIPPED,
    Verdict.RETRY: OutcomeResult.FAILED,
    Verdict.FAILED: OutcomeResult.FAILED,
}
_STATUS_OF = {
    Verdict.SENT: t.SENT,
    Verdict.SKIPPED: t.SKIPPED,
    Verdict.RETRY: t.PENDING,
    Verdict.FAILED: t.FAILED,
}


async def write_results(conn: AsyncConnection, results: Sequence[Result]) -> list[Result]:
    """Record the results whose claim is current; return those (the rest were stale).

    Killed before the commit: nothing is recorded, the actions' leases lapse and
    they are sent again with the same idempotency key (a coupon is generated
    anew, and only that one is ever issued). Killed after: all is recorded and
    the relay publishes the outcomes.
    """
    if not results:
        return []
    current = await conn.execute(
        _current_claims(conn.dialect.name), {"b_ids": [r.job.action_id for r in results]}
    )
    claims = {row.id: (row.attempts, row.status) for row in current}
    accepted = [r for r in results if claims.get(r.job.action_id) == (r.job.attempt, t.PENDING)]
    if not accepted:
        return []
    await conn.execute(_record_result(), [_action_update(r) for r in accepted])
    coupons = [_coupon_row(r) for r in accepted if r.coupon is not None]
    if coupons:
        await conn.execute(insert_ignoring_conflicts(conn, t.coupons), coupons)
    records = [_outcome(r) for r in accepted]
    records += [_dead_letter(r) for r in accepted if r.verdict == Verdict.FAILED]
    await conn.execute(insert_ignoring_conflicts(conn, t.outbox), records)
    return accepted


# Built once each: SQLAlchemy reuses their cache keys and compiled forms.
@functools.cache
def _current_claims(dialect: str) -> Select[tuple[int, int, str]]:
    a = t.actions.c
    return (
        select(a.id, a.attempts, a.status)
        .where(one_of_param(dialect, a.id, "b_ids"))
        .with_for_update()
    )


@functools.cache
def _record_result() -> Update:
    a = t.actions.c
    return (
        update(t.actions)
        .where(a.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            reason=bindparam("b_reason"),
            not_before=bindparam("b_not_before"),
            finished_at=bindparam("b_finished_at"),
            provider_message_id=bindparam("b_provider_message_id"),
        )
    )


def _action_update(result: Result) -> dict[str, Any]:
    final = result.verdict != Verdict.RETRY
    return {
        "b_id": result.job.action_id,
        "b_status": _STATUS_OF[result.verdict],
        "b_reason": result.reason,
        "b_not_before": result.retry_at or result.job.lease_until,
        "b_finished_at": result.occurred_at if final else None,
        "b_provider_message_id": result.provider_message_id,
    }


def _coupon_row(result: Result) -> dict[str, Any]:
    coupon = result.coupon
    assert coupon is not None
    return {
        "code": coupon.code,
        "transition_id": result.job.ref.transition_id,
        "ledger_key": result.job.ref.ledger_key,
        "rule": result.job.ref.rule,
        "user_id": result.job.ref.user_id,
        "amount": coupon.amount,
        "currency": coupon.currency,
        "expires_at": coupon.expires_at,
        "issued_at": result.occurred_at,
    }


def _outcome(result: Result) -> dict[str, Any]:
    return outcome_row(
        result.job.ref,
        _OUTCOME_OF[result.verdict],
        attempt=result.job.attempt,
        occurred_at=result.occurred_at,
        reason=result.reason,
        coupon=result.coupon,
        provider_message_id=result.provider_message_id,
    )


def _dead_letter(result: Result) -> dict[str, Any]:
    return dead_letter_row(
        result.job.ref,
        params=result.job.params,
        idempotency_key=result.job.idempotency_key,
        attempts=result.job.attempt,
        error=result.reason or "failed",
        transition_payload=result.job.transition_payload,
    )
