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


# The members as module names: `Stage.NEW` is an attribute lookup on the enum class
# (~0.1 µs), and these rules run several per fired timer.
_STAGE_TIMER = TimerKind.STAGE
_MILESTONE_TIMER = TimerKind.MILESTONE
_FLAG_EXPIRY_TIMER = TimerKind.FLAG_EXPIRY
_PROSPECT, _NEW, _ACTIVE, _SILENT, _CHURNED = (
    Stage.PROSPECT,
    Stage.NEW,
    Stage.ACTIVE,
    Stage.SILENT,
    Stage.CHURNED,
)
_NEGATIVE_FEEDBACK = RiskFlag.NEGATIVE_FEEDBACK


def inactive_since(state: Draft) -> datetime:
    """The start of the current inactivity episode."""
    return state.last_active_at or state.signed_up_at or state.first_seen_at


def stage_due(state: Draft, config: LifecycleConfig) -> datetime | None:
    stage = state.stage
    if stage is _NEW:
        ends = (state.signed_up_at or state.stage_since) + config.spans.onboarding
    elif stage is _ACTIVE:
        ends = inactive_since(state) + config.spans.silent_after
    elif stage is _SILENT:
        ends = inactive_since(state) + config.spans.churn_after
    else:
        return None
    # A stage never ends before it began (a late event can move activity back).
    return max(ends, state.stage_since)


def milestone_due(state: Draft, config: LifecycleConfig) -> tuple[datetime, int] | None:
    if state.stage is _PROSPECT:
        return None  # milestones are for signed-up users, who can be contacted
    reached = state.milestone_reached_days
    for days, span in config.spans.milestones:
        if days > reached:
            return inactive_since(state) + span, days
    return None


def flag_expiry_due(state: Draft, config: LifecycleConfig) -> datetime | None:
    if state.last_negative_feedback_at is None or _NEGATIVE_FEEDBACK not in state.risk_flags:
        return None
    return state.last_negative_feedback_at + config.spans.negative_feedback_window


# (due moment, kind, the milestone's days: 0 unless kind is MILESTONE). A plain tuple:
# the timer loop computes two per fired timer.
NextTimer = tuple[datetime, TimerKind, int]


def earliest(state: Draft, config: LifecycleConfig) -> NextTimer | None:
    """The next timer, ties broken by TimerKind order."""
    best: NextTimer | None = None
    due = stage_due(state, config)
    if due is not None:
        best = (due, _STAGE_TIMER, 0)
    milestone = milestone_due(state, config)
    if milestone is not None and (best is None or milestone[0] < best[0]):
        best = (milestone[0], _MILESTONE_TIMER, milestone[1])
    expiry = flag_expiry_due(state, config)
    if expiry is not None and (best is None or expiry < best[0]):
        best = (expiry, _FLAG_EXPIRY_TIMER, 0)
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
    if idle >= config.spans.churn_after:
        return _CHURNED
    if idle >= config.spans.silent_after:
        return _SILENT
    return _ACTIVE


_REASON_INTO = {
    Stage.ACTIVE: Reason.ONBOARDING_COMPLETE,
    Stage.SILENT: Reason.INACTIVITY,
    Stage.CHURNED: Reason.CHURN,
}


def _fire(state: Draft, timer: NextTimer, config: LifecycleConfig, out: list[Emitted]) -> None:
    due, kind, milestone_days = timer
    if kind is _FLAG_EXPIRY_TIMER:
        state.risk_flags = tuple(f for f in state.risk_flags if f != _NEGATIVE_FEEDBACK)
        return
    refresh_rfm(state, due, config)
    if kind is _MILESTONE_TIMER:
        state.milestone_reached_days = milestone_days
        out.append(emit.milestone_reached(state, milestone_days, due))
        return
    before = state.stage
    if before is _NEW:
        after = stage_by_inactivity(state, due, config)
    elif before is _ACTIVE:
        after = _SILENT
    else:
        after = _CHURNED
    state.stage = after
    state.stage_since = due
    out.append(emit.stage_changed(state, before, _REASON_INTO[after], due))
