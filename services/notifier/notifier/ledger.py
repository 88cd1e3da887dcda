"""Planning a batch of transitions into the ledger, in the caller's ONE transaction.

The ledger's unique key (transition_id, ledger_key) makes planning idempotent:
a redelivered or replayed transition inserts nothing and decides nothing new.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.clocks import observe
from notifier.decisions import REASON_QUIET_HOURS, Decision, decide
from notifier.playbook import PlannedAction, Playbook, plan
from notifier.records import ActionRef, outcome_row
from notifier.store import tables as t
from notifier.store.dialect import insert_ignoring_conflicts, one_of
from shared.clock import Clock
from shared.notifications import OutcomeResult
from shared.transitions import Transition, TransitionKind

_IDEMPOTENCY_NAMESPACE = uuid.UUID("a3e1f0c4-5b6d-4e2f-9c8a-7d1b2e3f4a5c")
# Caps look back at most a week; a day's margin covers a deferred send's later due time.
_CAPS_LOOKBACK = timedelta(days=8)
REACTIVATED = "reactivated"


def idempotency_key(transition_id: str, ledger_key: str) -> str:
    """Stable across retries and crashes: providers de-duplicate on it."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{transition_id}|{ledger_key}"))


@dataclass(frozen=True, slots=True)
class Received:
    transition: Transition
    payload: bytes  # the bytes as consumed, kept to render and to dead-letter later
    # Where it was read (for a dead letter when it cannot be planned).
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(slots=True)
class PlanSummary:
    transitions: int = 0
    reactivations: int = 0
    # (channel, result) -> newly planned actions; result: pending, deferred, skipped:<reason>
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)


async def plan_batch(
    conn: AsyncConnection,
    batch: Sequence[Received],
    *,
    playbook: Playbook,
    clock: Clock,
    wall_now: datetime,
) -> PlanSummary:
    """Insert the batch's new actions, their decisions and outcomes, and reactivations.

    Runs inside the caller's transaction; killed before it commits, nothing of
    the batch is kept and its offsets were not committed, so it is planned again.
    """
    summary = PlanSummary(transitions=len(batch))
    planned: list[tuple[Received, int, PlannedAction, datetime]] = []
    for received in batch:
        observe(clock, received.transition.time)
        positions: dict[str, int] = defaultdict(int)
        for action in plan(received.transition, playbook):
            planned.append((received, positions[action.rule], action, clock.now()))
            positions[action.rule] += 1
    summary.reactivations = await _record_reactivations(conn, batch)
    if not planned:
        return summary

    known = await _already_planned(conn, {r.transition.id for r, *_ in planned})
    fresh = [p for p in planned if (p[0].transition.id, p[2].ledger_key) not in known]
    if not fresh:
        return summary
    users = {r.transition.data.user_id for r, *_ in fresh}
    suppressed = await _suppressions(conn, users)
    history = await _send_history(conn, users, min(now for *_, now in fresh) - _CAPS_LOOKBACK)

    rows: list[dict[str, object]] = []
    decisions: dict[tuple[str, str], Decision] = {}
    for received, position, action, now in fresh:
        data = received.transition.data
        decision = decide(
            action,
            traits=data.profile.traits,
            suppressed_channels=suppressed.get(data.user_id, set()),
            sent_at=history[(data.user_id, action.channel)],
            now=now,
            playbook=playbook,
        )
        if decision.skip_reason is None:
            # Later actions in this batch count this one against the user's caps.
            history[(data.user_id, action.channel)].append(decision.due_at)
        decisions[(received.transition.id, action.ledger_key)] = decision
        rows.append(
            _action_row(
                received.transition,
                position=position,
                action=action,
                decision=decision,
                now=now,
                wall_now=wall_now,
            )
        )

    inserted = await _insert_actions(conn, rows)
    await _insert_transitions(conn, fresh, inserted, decisions)
    outcomes = []
    for received, _position, action, now in fresh:
        key = (received.transition.id, action.ledger_key)
        if key not in inserted:
            continue  # another consumer planned it between our check and insert
        decision = decisions[key]
        ref = _ref(received.transition, action)
        if decision.skip_reason is not None:
            summary.actions[(action.channel, f"skipped:{decision.skip_reason}")] += 1
            outcomes.append(
                outcome_row(
                    ref,
                    OutcomeResult.SKIPPED,
                    attempt=1,
                    occurred_at=now,
                    reason=decision.skip_reason,
                )
            )
        else:
            summary.actions[(action.channel, "pending")] += 1
        if decision.deferred:
            summary.actions[(action.channel, "deferred")] += 1
            outcomes.append(
                outcome_row(
                    ref,
                    OutcomeResult.DEFERRED,
                    attempt=1,
                    occurred_at=now,
                    reason=f"{REASON_QUIET_HOURS} until {decision.due_at.isoformat()}",
                )
            )
    if outcomes:
        # Killed after the commit: these are in the outbox and the relay publishes them.
        await conn.execute(insert_ignoring_conflicts(conn, t.outbox), outcomes)
    return summary


def _ref(transition: Transition, action: PlannedAction) -> ActionRef:
    return ActionRef(
        transition_id=transition.id,
        ledger_key=action.ledger_key,
        user_id=transition.data.user_id,
        rule=action.rule,
        action=action.action,
        channel=action.channel,
    )


def _action_row(
    transition: Transition,
    *,
    position: int,
    action: PlannedAction,
    decision: Decision,
    now: datetime,
    wall_now: datetime,
) -> dict[str, object]:
    skipped = decision.skip_reason is not None
    return {
        "transition_id": transition.id,
        "ledger_key": action.ledger_key,
        "user_id": transition.data.user_id,
        "rule": action.rule,
        "action": action.action,
        "position": position,
        "channel": action.channel,
        "params": dict(action.params),
        "in_holdout": action.in_holdout,
        "idempotency_key": idempotency_key(transition.id, action.ledger_key),
        "status": t.SKIPPED if skipped else t.PENDING,
        "reason": decision.skip_reason,
        "attempts": 0,
        "due_at": decision.due_at,
        "not_before": wall_now,
        "transition_at": transition.time,
        "planned_at": now,
        "finished_at": now if skipped else None,
    }


async def _already_planned(conn: AsyncConnection, transition_ids: set[str]) -> set[tuple[str, str]]:
    query = select(t.actions.c.transition_id, t.actions.c.ledger_key).where(
        one_of(conn, t.actions.c.transition_id, transition_ids)
    )
    return {(row.transition_id, row.ledger_key) for row in await conn.execute(query)}


async def _suppressions(conn: AsyncConnection, users: set[str]) -> dict[str, set[str]]:
    query = select(t.suppressions.c.user_id, t.suppressions.c.channel).where(
        one_of(conn, t.suppressions.c.user_id, users)
    )
    found: dict[str, set[str]] = defaultdict(set)
    for row in await conn.execute(query):
        found[row.user_id].add(row.channel)
    return found


async def _send_history(
    conn: AsyncConnection, users: set[str], since: datetime
) -> defaultdict[tuple[str, str], list[datetime]]:
    """When each user was (or will be) sent something, per channel: sent and still pending."""
    a = t.actions.c
    query = select(a.user_id, a.channel, a.status, a.finished_at, a.due_at).where(
        one_of(conn, a.user_id, users),
        or_(
            and_(a.status == t.SENT, a.finished_at >= since),
            and_(a.status == t.PENDING, a.due_at >= since),
        ),
    )
    history: defaultdict[tuple[str, str], list[datetime]] = defaultdict(list)
    for row in await conn.execute(query):
        history[(row.user_id, row.channel)].append(
            row.finished_at if row.status == t.SENT else row.due_at
        )
    return history


async def _insert_actions(
    conn: AsyncConnection, rows: list[dict[str, object]]
) -> set[tuple[str, str]]:
    """Insert, ignoring keys that exist; return the keys this call inserted.

    Killed after the caller commits: the actions are durable and the executor
    finds them; the offsets may not be committed yet, and the redelivery inserts nothing.
    """
    a = t.actions.c
    statement = insert_ignoring_conflicts(conn, t.actions).returning(a.transition_id, a.ledger_key)
    result = await conn.execute(statement, rows)
    return {(row.transition_id, row.ledger_key) for row in result}


async def _insert_transitions(
    conn: AsyncConnection,
    fresh: Sequence[tuple[Received, int, PlannedAction, datetime]],
    inserted: set[tuple[str, str]],
    decisions: dict[tuple[str, str], Decision],
) -> None:
    """Keep the payload of each transition that has an action left to execute.

    In the batch's transaction: killed before its commit, neither the actions nor
    the payloads exist; after it, both do (the executor never finds one without the other).
    """
    rows = {}
    for received, _position, action, _now in fresh:
        key = (received.transition.id, action.ledger_key)
        if key in inserted and decisions[key].skip_reason is None:
            transition = received.transition
            rows[transition.id] = {
                "id": transition.id,
                "user_id": transition.data.user_id,
                "occurred_at": transition.time,
                "payload": received.payload,
            }
    if rows:
        await conn.execute(insert_ignoring_conflicts(conn, t.transitions), list(rows.values()))


async def _record_reactivations(conn: AsyncConnection, batch: Sequence[Received]) -> int:
    """Feed the recall report. In the batch's transaction; a replay inserts nothing new."""
    rows = [
        {
            "transition_id": r.transition.id,
            "user_id": r.transition.data.user_id,
            "reactivated_at": r.transition.time,
        }
        for r in batch
        if r.transition.data.kind == TransitionKind.STAGE_CHANGED
        and r.transition.data.reason == REACTIVATED
    ]
    if rows:
        await conn.execute(insert_ignoring_conflicts(conn, t.reactivations), rows)
    return len(rows)
