"""Folding an anonymous profile into a user's when an identify or alias joins the ids."""

from __future__ import annotations

from datetime import datetime

from shared.transitions import Stage
from stage_engine.lifecycle import emit
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.emit import Emitted, Reason
from stage_engine.lifecycle.machine import Step, purchase_level_for
from stage_engine.lifecycle.signals import add_activity
from stage_engine.lifecycle.state import Draft, TraitValue, UserState, finite_sum
from stage_engine.lifecycle.timers import next_due, refresh_rfm


def merge_anonymous(
    user: UserState | None, anonymous: UserState, user_id: str, config: LifecycleConfig
) -> Step:
    """The user's profile with the anonymous profile's history folded in.

    `user` None: the anonymous profile simply becomes the user's (still a
    prospect until the identify itself, applied next with advance(), signs up).
    Otherwise counters add up, times take the earliest or latest as fits, and
    a silent or churned user whose anonymous activity came after their stage
    began is reactivated at that activity's time. Past transitions stand.
    """
    rekeyed = anonymous.thaw()
    rekeyed.user_id = user_id
    rekeyed.is_anonymous = False
    if user is None:
        return Step(rekeyed.freeze(), ())
    if user.signed_up_at is None and anonymous.signed_up_at is not None:
        base, other = rekeyed, user.thaw()  # the signed-up side owns the stage history
    else:
        base, other = user.thaw(), rekeyed
    level_before, flags_before = base.purchase_level, base.risk_flags
    moment = max(base.last_event_at, other.last_event_at)
    _fold_orders(base, other, config)
    base.first_seen_at = min(base.first_seen_at, other.first_seen_at)
    base.last_event_at = moment
    _merge_activity(base, other, 2 * config.activity_window_days)
    base.traits = _newer_last(base, other)
    base.traits_at = _latest(base.traits_at, other.traits_at)
    base.last_negative_feedback_at = _latest(
        base.last_negative_feedback_at, other.last_negative_feedback_at
    )
    base.risk_flags = tuple(sorted(set(base.risk_flags) | set(other.risk_flags)))
    active_at = other.last_active_at
    if active_at is not None and (base.last_active_at is None or active_at > base.last_active_at):
        base.last_active_at = active_at
        base.milestone_reached_days = 0
    refresh_rfm(base, moment, config)
    out: list[Emitted] = []
    active_at = base.last_active_at
    if (
        active_at is not None
        and base.stage in (Stage.SILENT, Stage.CHURNED)
        and active_at >= base.stage_since
    ):
        before = base.stage
        base.stage = Stage.ACTIVE
        base.stage_since = active_at
        out.append(emit.stage_changed(base.freeze(), before, Reason.REACTIVATED, active_at))
    base.next_due_at = next_due(base, config)
    snapshot = base.freeze()
    if base.purchase_level is not level_before:
        out.append(emit.purchase_level_changed(snapshot, base.purchase_level, moment))
    out.extend(
        emit.risk_flag_raised(snapshot, flag, moment)
        for flag in base.risk_flags
        if flag not in flags_before
    )
    return Step(snapshot, tuple(out))


def _fold_orders(base: Draft, other: Draft, config: LifecycleConfig) -> None:
    base.orders += other.orders
    base.revenue = finite_sum("revenue", base.revenue, other.revenue)
    if other.last_order_at is not None and (
        base.last_order_at is None or other.last_order_at > base.last_order_at
    ):
        base.last_order_at = other.last_order_at
        base.last_order_value = other.last_order_value
    if other.first_order_at is not None and (
        base.first_order_at is None or other.first_order_at < base.first_order_at
    ):
        base.first_order_at = other.first_order_at
    base.purchase_level = purchase_level_for(base.orders, config)


def _latest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def _newer_last(base: Draft, other: Draft) -> dict[str, TraitValue]:
    """Traits of both, the more recently told ones winning."""
    if other.traits_at is not None and (base.traits_at is None or other.traits_at > base.traits_at):
        return {**base.traits, **other.traits}
    return {**other.traits, **base.traits}


def _merge_activity(base: Draft, other: Draft, keep_days: int) -> None:
    """Add the other profile's daily counts into the base's, in the base's window."""
    first, counts = base.activity_first_day, base.activity_counts
    for offset, count in enumerate(other.activity_counts):
        for _ in range(count):
            first, counts = add_activity(
                first, counts, other.activity_first_day + offset, keep_days
            )
    base.activity_first_day, base.activity_counts = first, counts
