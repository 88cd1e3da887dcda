"""advance() and expire(): the pure lifecycle rules, one event or one moment at a time.

advance() first fires every timer due strictly before the event's time, so
processing events in event time gives the same transitions as living through
them with expire() calls in between. A late event (older than what the state
has seen) updates counters and never un-fires or reverses a past transition.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.events import Event
from shared.transitions import PurchaseLevel, Stage
from stage_engine.lifecycle import emit, signals
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.emit import Emitted, Reason, RiskFlag
from stage_engine.lifecycle.rfm import RfmEdges, score
from stage_engine.lifecycle.state import Draft, UserState, finite_sum
from stage_engine.lifecycle.timers import fire_due, next_due, refresh_rfm

# (from stage, reason, moment) of the one stage change an event can make.
StageChange = tuple[Stage | None, str, datetime]


class Step(NamedTuple):
    state: UserState
    transitions: tuple[Emitted, ...]


def expire(state: UserState, now: datetime, config: LifecycleConfig) -> Step:
    """Fire everything due at or before `now`; next_due_at ends strictly after `now` or None."""
    due = state.next_due_at
    if due is None or due > now:
        return Step(state, ())
    out: list[Emitted] = []
    draft = state.thaw()
    fire_due(draft, signals.utc(now), config, out, inclusive=True)
    return Step(draft.freeze(), tuple(out))


def advance(state: UserState | None, event: Event, config: LifecycleConfig) -> Step:
    """Apply one event to the state of its profile key (None: first event of that key)."""
    at = signals.utc(event.timestamp)
    out: list[Emitted] = []
    if state is None:
        draft = _first_seen(event, at)
    else:
        draft = state.thaw()
        if draft.next_due_at is not None and draft.next_due_at < at:
            fire_due(draft, at, config, out, inclusive=False)
    _apply(draft, event, at, config, out, brand_new=state is None)
    draft.next_due_at = next_due(draft, config)
    return Step(draft.freeze(), tuple(out))


def _first_seen(event: Event, at: datetime) -> Draft:
    return Draft(
        user_id=event.partition_key,
        is_anonymous=not event.user_id,
        stage=Stage.PROSPECT,
        stage_since=at,
        next_due_at=None,
        last_event_at=at,
        first_seen_at=at,
    )


def _apply(
    state: Draft,
    event: Event,
    at: datetime,
    config: LifecycleConfig,
    out: list[Emitted],
    *,
    brand_new: bool,
) -> None:
    """Update the state for one event, then emit what it made true, with the final profile."""
    if at >= state.last_event_at:
        state.last_event_at = at
    elif at < state.first_seen_at:
        state.first_seen_at = at
    if event.traits:
        _note_traits(state, event, at, config)
    stage_change: StageChange | None = (None, Reason.FIRST_SEEN, at) if brand_new else None
    if state.signed_up_at is None and signals.is_signup(event, config):
        stage_change = (
            None if brand_new else state.stage,
            Reason.SIGNUP,
            max(at, state.stage_since),
        )
        state.signed_up_at = at
        state.stage = Stage.NEW
        state.stage_since = stage_change[2]
        _active_at(state, at)
    raised: list[str] = []
    if signals.is_activity(event, config):
        stage_change = _activity(state, at, config, raised) or stage_change
    level_before = state.purchase_level
    if event.type == "track":
        value = signals.purchase_value(event, config)
        if value is not None:
            _ordered(state, value, at, config, raised)
        if signals.is_negative_feedback(event, config):
            _negative_feedback(state, at, config, raised)
    if stage_change is None and not raised and state.purchase_level is level_before:
        return
    # Emit with the profile as it stands after the whole event.
    snapshot = state.freeze()
    if stage_change is not None:
        from_stage, reason, moment = stage_change
        out.append(emit.stage_changed(snapshot, from_stage, reason, moment))
    if state.purchase_level is not level_before and state.last_order_at is not None:
        out.append(emit.purchase_level_changed(snapshot, state.purchase_level, state.last_order_at))
    out.extend(emit.risk_flag_raised(snapshot, flag, at) for flag in raised)


def _note_traits(state: Draft, event: Event, at: datetime, config: LifecycleConfig) -> None:
    """Allow-listed contact traits; the most recently told value wins."""
    traits = signals.contact_traits(event, config)
    if traits and (state.traits_at is None or at >= state.traits_at):
        state.traits = {**state.traits, **traits}
        state.traits_at = at


def _activity(
    state: Draft, at: datetime, config: LifecycleConfig, raised: list[str]
) -> StageChange | None:
    """Count the activity; a return after silence or churn (not a late one) reactivates."""
    in_order = state.last_active_at is None or at >= state.last_active_at
    _active_at(state, at)
    today = at.toordinal()
    counts = state.activity_counts
    new_day = not counts or state.activity_first_day + len(counts) - 1 != today
    state.activity_first_day, state.activity_counts = signals.add_activity(
        state.activity_first_day, counts, today, 2 * config.activity_window_days
    )
    # Within one day the baseline is fixed and recent activity only grows, so
    # the flag can only clear: evaluate on a day's first activity, or to clear.
    if in_order and (new_day or RiskFlag.ACTIVITY_DROP in state.risk_flags):
        _flag(state, RiskFlag.ACTIVITY_DROP, _activity_dropped(state, today, config), raised)
    if state.stage in (Stage.SILENT, Stage.CHURNED) and at >= state.stage_since:
        change: StageChange = (state.stage, Reason.REACTIVATED, at)
        state.stage = Stage.ACTIVE
        state.stage_since = at
        return change
    return None


def _active_at(state: Draft, at: datetime) -> None:
    """Activity at `at`: a newer one starts a new inactivity episode."""
    if state.last_active_at is None or at > state.last_active_at:
        state.last_active_at = at
        state.milestone_reached_days = 0


def _flag(state: Draft, flag: str, holds: bool, raised: list[str]) -> None:
    """Set or clear a risk flag; only raising it is a transition."""
    present = flag in state.risk_flags
    if holds and not present:
        raised.append(flag)
        state.risk_flags = tuple(sorted((*state.risk_flags, flag)))
    elif present and not holds:
        state.risk_flags = tuple(f for f in state.risk_flags if f != flag)


def _activity_dropped(state: Draft, today: int, config: LifecycleConfig) -> bool:
    """Activity in the last window under `ratio` of the window before (full baseline only)."""
    window = config.activity_window_days
    baseline_start = today - 2 * window + 1
    if state.first_seen_at.toordinal() > baseline_start:
        return False
    first, counts = state.activity_first_day, state.activity_counts
    baseline = signals.activity_in(first, counts, baseline_start, today - window)
    if baseline < config.activity_drop_min_baseline:
        return False
    recent = signals.activity_in(first, counts, today - window + 1, today)
    return recent < baseline * config.activity_drop_ratio


def purchase_level_for(orders: int, config: LifecycleConfig) -> PurchaseLevel:
    if orders >= config.loyal_order_count:
        return PurchaseLevel.LOYAL
    if orders >= config.repeat_order_count:
        return PurchaseLevel.REPEAT
    if orders >= 1:
        return PurchaseLevel.FIRST_PURCHASE
    return PurchaseLevel.NONE


def _ordered(
    state: Draft, value: float, at: datetime, config: LifecycleConfig, raised: list[str]
) -> None:
    previous_orders = state.orders
    baseline = state.average_order_value
    in_order = state.last_order_at is None or at >= state.last_order_at
    state.orders = previous_orders + 1
    state.revenue = finite_sum("revenue", state.revenue, value)
    if state.first_order_at is None or at < state.first_order_at:
        state.first_order_at = at
    if in_order:
        state.last_order_at = at
        state.last_order_value = value
    state.purchase_level = purchase_level_for(state.orders, config)
    if in_order and previous_orders > 0:
        dropped = value < baseline * config.order_value_drop_ratio
        _flag(state, RiskFlag.ORDER_VALUE_DROP, dropped, raised)
    refresh_rfm(state, state.last_event_at, config)


def _negative_feedback(
    state: Draft, at: datetime, config: LifecycleConfig, raised: list[str]
) -> None:
    last = state.last_negative_feedback_at
    if last is not None and at <= last:
        return
    state.last_negative_feedback_at = at
    # A late complaint whose window already closed raises nothing.
    if at + config.spans.negative_feedback_window > state.last_event_at:
        _flag(state, RiskFlag.NEGATIVE_FEEDBACK, True, raised)  # noqa: FBT003


def rescore(state: UserState, edges: RfmEdges, now: datetime) -> UserState:
    """RFM scores as of `now` with population edges; never a transition."""
    if state.orders == 0 and state.rfm is None:
        return state
    draft = state.thaw()
    draft.rfm = score(state.last_order_at, state.orders, state.revenue, edges, now)
    return draft.freeze()
