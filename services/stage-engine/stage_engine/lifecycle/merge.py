"""Folding an anonymous profile into a user's when an identify or alias joins the ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.transitions import Stage, Transition
from stage_engine.lifecycle import emit
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.emit import Reason
from stage_engine.lifecycle.machine import Step, purchase_level_for, rescore
from stage_engine.lifecycle.state import ActivityDays, TraitValue, UserState
from stage_engine.lifecycle.timers import next_due


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
    rekeyed = replace(anonymous, user_id=user_id, is_anonymous=False)
    if user is None:
        return Step(rekeyed, ())
    if user.signed_up_at is None and rekeyed.signed_up_at is not None:
        base, other = rekeyed, user  # the signed-up side owns the stage history
    else:
        base, other = user, rekeyed
    moment = max(base.last_event_at, other.last_event_at)
    merged = _fold_counters(base, other, config)
    merged = replace(
        merged,
        first_seen_at=min(base.first_seen_at, other.first_seen_at),
        last_event_at=moment,
        activity_days=_merge_days(
            base.activity_days, other.activity_days, 2 * config.activity_window_days
        ),
        traits=_newer_last(base, other),
        traits_at=_latest(base.traits_at, other.traits_at),
        last_negative_feedback_at=_latest(
            base.last_negative_feedback_at, other.last_negative_feedback_at
        ),
        risk_flags=tuple(sorted(set(base.risk_flags) | set(other.risk_flags))),
    )
    if other.last_active_at is not None and (
        base.last_active_at is None or other.last_active_at > base.last_active_at
    ):
        merged = replace(merged, last_active_at=other.last_active_at, milestone_reached_days=0)
    out: list[Transition] = []
    reactivated_at = merged.last_active_at
    if (
        merged.stage in (Stage.SILENT, Stage.CHURNED)
        and reactivated_at is not None
        and reactivated_at >= merged.stage_since
    ):
        before = merged.stage
        merged = replace(merged, stage=Stage.ACTIVE, stage_since=reactivated_at)
        out.append(emit.stage_changed(merged, before, Reason.REACTIVATED, reactivated_at))
    if merged.purchase_level is not base.purchase_level:
        out.append(emit.purchase_level_changed(merged, merged.purchase_level, moment))
    out.extend(
        emit.risk_flag_raised(merged, flag, moment)
        for flag in merged.risk_flags
        if flag not in base.risk_flags
    )
    return Step(replace(merged, next_due_at=next_due(merged, config)), tuple(out))


def _fold_counters(base: UserState, other: UserState, config: LifecycleConfig) -> UserState:
    orders = base.orders + other.orders
    last_order_at: datetime | None
    if other.last_order_at is not None and (
        base.last_order_at is None or other.last_order_at > base.last_order_at
    ):
        last_order_at, last_value = other.last_order_at, other.last_order_value
    else:
        last_order_at, last_value = base.last_order_at, base.last_order_value
    firsts = [t for t in (base.first_order_at, other.first_order_at) if t is not None]
    merged = replace(
        base,
        orders=orders,
        revenue=base.revenue + other.revenue,
        first_order_at=min(firsts) if firsts else None,
        last_order_at=last_order_at,
        last_order_value=last_value,
        purchase_level=purchase_level_for(orders, config),
    )
    return rescore(merged, config.rfm_edges, max(base.last_event_at, other.last_event_at))


def _latest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def _newer_last(base: UserState, other: UserState) -> dict[str, TraitValue]:
    """Traits of both, the more recently told ones winning."""
    if other.traits_at is not None and (base.traits_at is None or other.traits_at > base.traits_at):
        return {**base.traits, **other.traits}
    return {**other.traits, **base.traits}


def _merge_days(first: ActivityDays, second: ActivityDays, keep_days: int) -> ActivityDays:
    counts = dict(first)
    for day, count in second:
        counts[day] = counts.get(day, 0) + count
    if not counts:
        return ()
    oldest = max(counts) - keep_days
    return tuple(sorted((day, n) for day, n in counts.items() if day > oldest))
