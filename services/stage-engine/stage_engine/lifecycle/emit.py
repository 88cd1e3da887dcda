"""Turning what became true into shared.transitions.Transition records.

Ids are deterministic (Transition.build): the user, the kind, the moment and a
discriminator naming what changed, so a replay produces the same ids.
"""

from __future__ import annotations

from datetime import datetime

from shared.transitions import (
    Profile,
    PurchaseLevel,
    Rfm,
    Stage,
    Transition,
    TransitionData,
    TransitionKind,
)
from stage_engine.lifecycle.state import Draft, UserState

# The rules emit from their working Draft (no frozen copy per transition: the timer
# loop fires ~20k a second) or from a UserState; both have the same fields.
StateView = UserState | Draft


class Reason:
    """The `reason` values of the transitions, one place for every name."""

    FIRST_SEEN = "first_seen"
    SIGNUP = "signup"
    ONBOARDING_COMPLETE = "onboarding_complete"
    INACTIVITY = "inactivity"
    CHURN = "churn"
    REACTIVATED = "reactivated"
    PURCHASE = "purchase"
    RISK = "risk"


class RiskFlag:
    ACTIVITY_DROP = "activity_drop"
    ORDER_VALUE_DROP = "order_value_drop"
    NEGATIVE_FEEDBACK = "negative_feedback"


def profile_of(state: StateView) -> Profile:
    """The profile snapshot a transition carries (and the HTTP view of a user)."""
    rfm = state.rfm
    return Profile(
        stage=state.stage,
        stage_since=state.stage_since,
        first_seen_at=state.first_seen_at,
        signed_up_at=state.signed_up_at,
        last_active_at=state.last_active_at,
        orders=state.orders,
        revenue=state.revenue,
        average_order_value=state.average_order_value,
        last_order_at=state.last_order_at,
        purchase_level=state.purchase_level,
        rfm=None
        if rfm is None
        else Rfm(recency=rfm[0], frequency=rfm[1], monetary=rfm[2], segment=rfm[3]),
        risk_flags=state.risk_flags,
        traits=dict(state.traits),
    )


def stage_changed(
    state: StateView, from_stage: Stage | None, reason: str, occurred_at: datetime
) -> Transition:
    """`state` is already in its new stage."""
    data = TransitionData(
        user_id=state.user_id,
        kind=TransitionKind.STAGE_CHANGED,
        from_stage=from_stage,
        to_stage=state.stage,
        reason=reason,
        profile=profile_of(state),
    )
    source = from_stage.value if from_stage is not None else ""
    return Transition.build(data, occurred_at, discriminator=f"{source}>{state.stage.value}")


def milestone_reached(state: StateView, days: int, occurred_at: datetime) -> Transition:
    data = TransitionData(
        user_id=state.user_id,
        kind=TransitionKind.INACTIVITY_MILESTONE,
        to_stage=state.stage,
        reason=Reason.INACTIVITY,
        milestone_days=days,
        profile=profile_of(state),
    )
    return Transition.build(data, occurred_at, discriminator=f"milestone:{days}")


def purchase_level_changed(
    state: StateView, level: PurchaseLevel, occurred_at: datetime
) -> Transition:
    data = TransitionData(
        user_id=state.user_id,
        kind=TransitionKind.PURCHASE_LEVEL_CHANGED,
        to_stage=state.stage,
        reason=Reason.PURCHASE,
        purchase_level=level,
        profile=profile_of(state),
    )
    return Transition.build(data, occurred_at, discriminator=f"level:{level.value}")


def risk_flag_raised(state: StateView, flag: str, occurred_at: datetime) -> Transition:
    data = TransitionData(
        user_id=state.user_id,
        kind=TransitionKind.RISK_FLAG_RAISED,
        to_stage=state.stage,
        reason=Reason.RISK,
        flag=flag,
        profile=profile_of(state),
    )
    return Transition.build(data, occurred_at, discriminator=f"flag:{flag}")
