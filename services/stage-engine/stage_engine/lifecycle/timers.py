"""Time-based rules: the end of onboarding, silence, churn, milestones, flag expiry.

Every timer's due moment is computed from the state alone (event times), so
firing it at any later wall time gives the same transition, with `time` =
the due moment, never the moment it was noticed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum

from shared.transitions import Stage
from stage_engine.lifecycle import emit
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.emit import Emitted, Reason, RiskFlag
from stage_engine.lifecycle.rfm import score
from stage_engine.lifecycle.state import Draft

DAY = timedelta(days=1)


class TimerKind(IntEnum):
    """Timers due at the same moment fire in this order (stage first)."""

    STAGE = 0
    MILESTONE = 1
    FLAG_EXPIRY = 2


def inactive_since(state: Draft) -> datetime:
    """The start of the current inactivity episode."""
    return state.last_active_at or state.signed_up_at or state.first_seen_at


def stage_due(state: Draft, config: LifecycleConfig) -> datetime | None:
    stage = state.stage
    if stage is Stage.NEW:
        ends = (state.signed_up_at or state.stage_since) + config.onboarding_days * DAY
    elif stage is Stage.ACTIVE:
        ends = inactive_since(state) + config.silent_after_days * DAY
    elif stage is Stage.SILENT:
        ends = inactive_since(state) + config.churn_after_days * DAY
    else:
        return None
    # A stage never ends before it began (a late event can move activity back).
    return max(ends, state.stage_since)


def milestone_due(state: Draft, config: LifecycleConfig) -> tuple[datetime, int] | None:
    if state.stage is Stage.PROSPECT:
        return None  # milestones are for signed-up users, who can be contacted
    reached = state.milestone_reached_days
    for days in config.milestone_days:
        if days > reached:
            return inactive_since(state) + days * DAY, days
    return None


def flag_expiry_due(state: Draft, config: LifecycleConfig) -> datetime | None:
    if (
        state.last_negative_feedback_at is None
        or RiskFlag.NEGATIVE_FEEDBACK not in state.risk_flags
    ):
        return None
    return state.last_negative_feedback_at + config.negative_feedback_window_days * DAY


# (due moment, kind, the milestone's days: 0 unless kind is MILESTONE). A plain tuple:
# the timer loop computes two per fired timer.
NextTimer = tuple[datetime, TimerKind, int]


def earliest(state: Draft, config: LifecycleConfig) -> NextTimer | None:
    """The next timer, ties broken by TimerKind order."""
    best: NextTimer | None = None
    due = stage_due(state, config)
    if due is not None:
        best = (due, TimerKind.STAGE, 0)
    milestone = milestone_due(state, config)
    if milestone is not None and (best is None or milestone[0] < best[0]):
        best = (milestone[0], TimerKind.MILESTONE, milestone[1])
    expiry = flag_expiry_due(state, config)
    if expiry is not None and (best is None or expiry < best[0]):
        best = (expiry, TimerKind.FLAG_EXPIRY, 0)
    return best


def next_due(state: Draft, config: LifecycleConfig) -> datetime | None:
    found = earliest(state, config)
    return None if found is None else found[0]


def fire_due(
    state: Draft,
    limit: datetime,
    config: LifecycleConfig,
    out: list[Emitted],
    *,
    inclusive: bool,
) -> None:
    """Fire, in time order, every timer due before `limit` (or at it, when inclusive).

    Leaves `state.next_due_at` at the next timer still to come (or None).
    """
    while True:
        found = earliest(state, config)
        if found is None:
            state.next_due_at = None
            return
        due = found[0]
        if due > limit or (due == limit and not inclusive):
            state.next_due_at = due
            return
        _fire(state, found, config, out)


def refresh_rfm(state: Draft, at: datetime, config: LifecycleConfig) -> None:
    """RFM recency moves with time: rescore when a transition is emitted or an order lands."""
    if state.orders:
        state.rfm = score(state.last_order_at, state.orders, state.revenue, config.rfm_edges, at)


def stage_by_inactivity(state: Draft, at: datetime, config: LifecycleConfig) -> Stage:
    idle = at - inactive_since(state)
    if idle >= config.churn_after_days * DAY:
        return Stage.CHURNED
    if idle >= config.silent_after_days * DAY:
        return Stage.SILENT
    return Stage.ACTIVE


_REASON_INTO = {
    Stage.ACTIVE: Reason.ONBOARDING_COMPLETE,
    Stage.SILENT: Reason.INACTIVITY,
    Stage.CHURNED: Reason.CHURN,
}


def _fire(state: Draft, timer: NextTimer, config: LifecycleConfig, out: list[Emitted]) -> None:
    due, kind, milestone_days = timer
    if kind is TimerKind.FLAG_EXPIRY:
        state.risk_flags = tuple(f for f in state.risk_flags if f != RiskFlag.NEGATIVE_FEEDBACK)
        return
    refresh_rfm(state, due, config)
    if kind is TimerKind.MILESTONE:
        state.milestone_reached_days = milestone_days
        out.append(emit.milestone_reached(state, milestone_days, due))
        return
    before = state.stage
    if before is Stage.NEW:
        after = stage_by_inactivity(state, due, config)
    elif before is Stage.ACTIVE:
        after = Stage.SILENT
    else:
        after = Stage.CHURNED
    state.stage = after
    state.stage_since = due
    out.append(emit.stage_changed(state, before, _REASON_INTO[after], due))
