"""Turning what became true into shared.transitions.Transition records.

Ids are deterministic (shared.transitions.transition_id): the user, the kind, the
moment and a discriminator naming what changed, so a replay produces the same ids.

Each Transition is validated once from one nested dict: a third cheaper than building
its Profile, TransitionData and envelope as three models (the timer loop emits one per
fired timer). The result equals Transition.build()'s (a unit test checks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.transitions import (
    Profile,
    PurchaseLevel,
    Stage,
    Transition,
    TransitionKind,
    transition_id,
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
    return Profile.model_validate(_profile_fields(state))


def _profile_fields(state: StateView) -> dict[str, Any]:
    rfm = state.rfm
    return {
        "stage": state.stage,
        "stage_since": state.stage_since,
        "first_seen_at": state.first_seen_at,
        "signed_up_at": state.signed_up_at,
        "last_active_at": state.last_active_at,
        "orders": state.orders,
        "revenue": state.revenue,
        "average_order_value": state.average_order_value,
        "last_order_at": state.last_order_at,
        "purchase_level": state.purchase_level,
        "rfm": None
        if rfm is None
        else {"recency": rfm[0], "frequency": rfm[1], "monetary": rfm[2], "segment": rfm[3]},
        "risk_flags": state.risk_flags,
        "traits": dict(state.traits),
    }


def _transition(
    state: StateView,
    kind: TransitionKind,
    occurred_at: datetime,
    discriminator: str,
    data: dict[str, Any],
) -> Transition:
    """The CloudEvents envelope of what became true for `state`'s user, as it stands now."""
    user_id = state.user_id
    return Transition.model_validate(
        {
            "id": transition_id(user_id, kind, occurred_at, discriminator),
            "type": kind.cloudevents_type,
            "subject": user_id,
            "time": occurred_at,
            "data": {"user_id": user_id, "kind": kind, **data, "profile": _profile_fields(state)},
        }
    )


def stage_changed(
    state: StateView, from_stage: Stage | None, reason: str, occurred_at: datetime
) -> Transition:
    """`state` is already in its new stage."""
    source = from_stage.value if from_stage is not None else ""
    return _transition(
        state,
        TransitionKind.STAGE_CHANGED,
        occurred_at,
        f"{source}>{state.stage.value}",
        {"from_stage": from_stage, "to_stage": state.stage, "reason": reason},
    )


def milestone_reached(state: StateView, days: int, occurred_at: datetime) -> Transition:
    return _transition(
        state,
        TransitionKind.INACTIVITY_MILESTONE,
        occurred_at,
        f"milestone:{days}",
        {"to_stage": state.stage, "reason": Reason.INACTIVITY, "milestone_days": days},
    )


def purchase_level_changed(
    state: StateView, level: PurchaseLevel, occurred_at: datetime
) -> Transition:
    return _transition(
        state,
        TransitionKind.PURCHASE_LEVEL_CHANGED,
        occurred_at,
        f"level:{level.value}",
        {"to_stage": state.stage, "reason": Reason.PURCHASE, "purchase_level": level},
    )


def risk_flag_raised(state: StateView, flag: str, occurred_at: datetime) -> Transition:
    return _transition(
        state,
        TransitionKind.RISK_FLAG_RAISED,
        occurred_at,
        f"flag:{flag}",
        {"to_stage": state.stage, "reason": Reason.RISK, "flag": flag},
    )
