"""advance() and expire(): the pure lifecycle rules, one event or one moment at a time.

advance() first fires every timer due strictly before the event's time, so
processing events in event time gives the same transitions as living through
them with expire() calls in between. A late event (older than what the state
has seen) updates counters and never un-fires or reverses a past transition.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from shared.events import Event
from shared.transitions import PurchaseLevel, Stage, Transition
from stage_engine.lifecycle import emit, signals
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.emit import Reason, RiskFlag
from stage_engine.lifecycle.rfm import RfmEdges, score
from stage_engine.lifecycle.state import UserState
from stage_engine.lifecycle.timers import DAY, fire_due, next_due

# (from stage, reason, moment) of the one stage change an event can make.
StageChange = tuple[Stage | None, str, datetime]


class Step(NamedTuple):
    state: UserState
    transitions: tuple[Transition, ...]


def expire(state: UserState, now: datetime, config: LifecycleConfig) -> Step:
    """Fire everything due at or before `now`; next_due_at ends strictly after `now` or None."""
    due = state.next_due_at
    if due is None or due > now:
        return Step(state, ())
    out: list[Transition] = []
    state = fire_due(state, signals.utc(now), config, out, inclusive=True)
    return Step(state, tuple(out))


def advance(state: UserState | None, event: Event, config: LifecycleConfig) -> Step:
    """Apply one event to the state of its profile key (None: first event of that key)."""
    at = signals.utc(event.timestamp)
    out: list[Transition] = []
    if state is None:
        state = _first_seen(event, at)
        first_stage: Stage | None = None
    else:
        first_stage = state.stage
        if state.next_due_at is not None and state.next_due_at < at:
            state = fire_due(state, at, config, out, inclusive=False)
    state = _apply(state, event, at, config, out, brand_new=first_stage is None)
    return Step(replace(state, next_due_at=next_due(state, config)), tuple(out))


def _first_seen(event: Event, at: datetime) -> UserState:
    return UserState(
        user_id=event.partition_key,
        is_anonymous=not event.user_id,
        stage=Stage.PROSPECT,
        stage_since=at,
        next_due_at=None,
        last_event_at=at,
        first_seen_at=at,
    )


def _apply(
    state: UserState,
    event: Event,
    at: datetime,
    config: LifecycleConfig,
    out: list[Transition],
    *,
    brand_new: bool,
) -> UserState:
    """Update the state for one event, then emit what it made true, with the final profile."""
    state = _noted(state, event, at, config)
    stage_change: StageChange | None = (None, Reason.FIRST_SEEN, at) if brand_new else None
    if state.signed_up_at is None and signals.is_signup(event, config):
        stage_change = (
            None if brand_new else state.stage,
            Reason.SIGNUP,
            max(at, state.stage_since),
        )
        state = replace(state, signed_up_at=at, stage=Stage.NEW, stage_since=stage_change[2])
        state = _active_at(state, at)
    raised: list[str] = []
    if signals.is_activity(event, config):
        state, reactivation = _activity(state, at, config, raised)
        stage_change = reactivation or stage_change

    level_before = state.purchase_level
    value = signals.purchase_value(event, config)
    if value is not None:
        state = _ordered(state, value, at, config, raised)
    if signals.is_negative_feedback(event, config):
        state = _negative_feedback(state, at, config, raised)

    # Emit with the profile as it stands after the whole event.
    if stage_change is not None:
        from_stage, reason, moment = stage_change
        out.append(emit.stage_changed(state, from_stage, reason, moment))
    if state.purchase_level is not level_before and state.last_order_at is not None:
        out.append(emit.purchase_level_changed(state, state.purchase_level, state.last_order_at))
    out.extend(emit.risk_flag_raised(state, flag, at) for flag in raised)
    return state


def _noted(state: UserState, event: Event, at: datetime, config: LifecycleConfig) -> UserState:
    """The event's time and its contact traits (newest traits win)."""
    changes: dict[str, object] = {}
    if at < state.last_event_at:
        if at < state.first_seen_at:
            changes["first_seen_at"] = at
    else:
        changes["last_event_at"] = at
    traits = signals.contact_traits(event, config)
    if traits and (state.traits_at is None or at >= state.traits_at):
        changes["traits"] = {**state.traits, **traits}
        changes["traits_at"] = at
    return replace(state, **changes) if changes else state  # type: ignore[arg-type]


def _activity(
    state: UserState, at: datetime, config: LifecycleConfig, raised: list[str]
) -> tuple[UserState, StageChange | None]:
    """Count the activity; a return after silence or churn (not a late one) reactivates."""
    in_order = state.last_active_at is None or at >= state.last_active_at
    state = _active_at(state, at)
    state = replace(
        state,
        activity_days=signals.add_activity(
            state.activity_days, at.toordinal(), 2 * config.activity_window_days
        ),
    )
    if in_order:
        state = _flag(state, RiskFlag.ACTIVITY_DROP, _activity_dropped(state, at, config), raised)
    if state.stage in (Stage.SILENT, Stage.CHURNED) and at >= state.stage_since:
        change: StageChange = (state.stage, Reason.REACTIVATED, at)
        return replace(state, stage=Stage.ACTIVE, stage_since=at), change
    return state, None


def _active_at(state: UserState, at: datetime) -> UserState:
    """Activity at `at`: a newer one starts a new inactivity episode."""
    if state.last_active_at is not None and at <= state.last_active_at:
        return state
    return replace(state, last_active_at=at, milestone_reached_days=0)


def _flag(state: UserState, flag: str, holds: bool, raised: list[str]) -> UserState:
    """Set or clear a risk flag; only raising it is a transition."""
    present = flag in state.risk_flags
    if holds and not present:
        raised.append(flag)
        return replace(state, risk_flags=tuple(sorted((*state.risk_flags, flag))))
    if present and not holds:
        return replace(state, risk_flags=tuple(f for f in state.risk_flags if f != flag))
    return state


def _activity_dropped(state: UserState, at: datetime, config: LifecycleConfig) -> bool:
    """Activity in the last window under `ratio` of the window before (full baseline only)."""
    window = config.activity_window_days
    today = at.toordinal()
    baseline_start = today - 2 * window + 1
    if state.first_seen_at.toordinal() > baseline_start:
        return False
    baseline = signals.activity_in(state.activity_days, baseline_start, today - window)
    if baseline < config.activity_drop_min_baseline:
        return False
    recent = signals.activity_in(state.activity_days, today - window + 1, today)
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
    state: UserState, value: float, at: datetime, config: LifecycleConfig, raised: list[str]
) -> UserState:
    previous_orders = state.orders
    baseline = state.average_order_value
    in_order = state.last_order_at is None or at >= state.last_order_at
    orders = previous_orders + 1
    first_order_at = at if state.first_order_at is None else min(state.first_order_at, at)
    state = replace(
        state,
        orders=orders,
        revenue=state.revenue + value,
        first_order_at=first_order_at,
        last_order_at=at if in_order else state.last_order_at,
        last_order_value=value if in_order else state.last_order_value,
        purchase_level=purchase_level_for(orders, config),
    )
    if in_order and previous_orders > 0:
        dropped = value < baseline * config.order_value_drop_ratio
        state = _flag(state, RiskFlag.ORDER_VALUE_DROP, dropped, raised)
    return rescore(state, config.rfm_edges, state.last_event_at)


def _negative_feedback(
    state: UserState, at: datetime, config: LifecycleConfig, raised: list[str]
) -> UserState:
    last = state.last_negative_feedback_at
    if last is not None and at <= last:
        return state
    state = replace(state, last_negative_feedback_at=at)
    # A late complaint whose window already closed raises nothing.
    still_open = at + config.negative_feedback_window_days * DAY > state.last_event_at
    if still_open:
        state = _flag(state, RiskFlag.NEGATIVE_FEEDBACK, True, raised)  # noqa: FBT003
    return state


def rescore(state: UserState, edges: RfmEdges, now: datetime) -> UserState:
    """RFM scores as of `now` with population edges; never a transition."""
    if state.orders == 0:
        return state if state.rfm is None else replace(state, rfm=None)
    return replace(state, rfm=score(state.last_order_at, state.orders, state.revenue, edges, now))
