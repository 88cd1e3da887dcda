"""Turning what became true into transitions, already in their wire form.

Ids are deterministic (shared.transitions.transition_id): the user, the kind, the
moment and a discriminator naming what changed, so a replay produces the same ids.

The rules emit `Emitted` records: the fields the engine files a transition under, and
its CloudEvents JSON body written by orjson straight from the state. That is half the
cost of validating a shared.transitions.Transition and serialising it (16 µs -> 8 per
transition, and the timer loop emits one per fired timer). The engine made every
value itself, so there is nothing to validate; a property test checks that the body
is, byte for byte, shared.codec.encode() of the Transition built model by model, and
`Emitted.transition` parses it back for readers that want the model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import orjson

from shared.transitions import (
    CLOUDEVENTS_SOURCE,
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


# pydantic writes UTC datetimes with a `Z`; orjson does too with this option.
_JSON_OPTIONS = orjson.OPT_UTC_Z
_CLOUDEVENTS_TYPES = {kind: kind.cloudevents_type for kind in TransitionKind}
# The kinds as module names: an enum member read off its class costs ~0.1 µs.
_STAGE_CHANGED = TransitionKind.STAGE_CHANGED
_INACTIVITY_MILESTONE = TransitionKind.INACTIVITY_MILESTONE
_PURCHASE_LEVEL_CHANGED = TransitionKind.PURCHASE_LEVEL_CHANGED
_RISK_FLAG_RAISED = TransitionKind.RISK_FLAG_RAISED
_new_tuple = tuple.__new__


class Emitted(NamedTuple):
    """One transition: what the engine stores and publishes it by, and its `body`
    (the CloudEvents JSON, exactly shared.codec.encode(self.transition))."""

    id: str
    subject: str  # the user id: the Kafka key, and whose history it joins
    kind: TransitionKind
    to_stage: Stage
    time: datetime
    body: bytes

    @property
    def transition(self) -> Transition:
        """The validated model, parsed from the body on every call (for readers and
        tests; the engine's own paths use the fields above)."""
        return Transition.model_validate_json(self.body)


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
    """Profile's fields in its order, without the ones that are None (the body drops
    them, as shared.codec.encode does, and the model defaults them to None)."""
    fields: dict[str, Any] = {
        "stage": state.stage,
        "stage_since": state.stage_since,
        "first_seen_at": state.first_seen_at,
    }
    if state.signed_up_at is not None:
        fields["signed_up_at"] = state.signed_up_at
    if state.last_active_at is not None:
        fields["last_active_at"] = state.last_active_at
    fields["orders"] = state.orders
    # the model's floats: a count stored as an int still reads 0.0, not 0
    fields["revenue"] = float(state.revenue)
    fields["average_order_value"] = float(state.average_order_value)
    if state.last_order_at is not None:
        fields["last_order_at"] = state.last_order_at
    fields["purchase_level"] = state.purchase_level
    rfm = state.rfm
    if rfm is not None:
        fields["rfm"] = {
            "recency": rfm[0],
            "frequency": rfm[1],
            "monetary": rfm[2],
            "segment": rfm[3],
        }
    fields["risk_flags"] = state.risk_flags
    # serialised right here, so the draft may change its traits afterwards
    fields["traits"] = state.traits
    return fields


def _transition(
    state: StateView,
    kind: TransitionKind,
    occurred_at: datetime,
    discriminator: str,
    data: dict[str, Any],
) -> Emitted:
    """What became true for `state`'s user (now in `state.stage`), with the profile
    as it stands now.

    `data` holds the kind's fields in TransitionData's order, from `user_id` on,
    without the None ones (shared.codec.encode drops them: exclude_none); the profile
    goes last. Each emitter builds it directly: filtering one generic dict here cost
    as much as serialising the body, and the timer loop emits one per fired timer.
    """
    user_id = state.user_id
    data["profile"] = _profile_fields(state)
    tid = transition_id(user_id, kind, occurred_at, discriminator)
    body = orjson.dumps(
        {
            "specversion": "1.0",
            "id": tid,
            "source": CLOUDEVENTS_SOURCE,
            "type": _CLOUDEVENTS_TYPES[kind],
            "subject": user_id,
            "time": occurred_at,
            "datacontenttype": "application/json",
            "data": data,
        },
        option=_JSON_OPTIONS,
    )
    # tuple.__new__ skips the NamedTuple's generated __new__ and its argument handling
    return _new_tuple(Emitted, (tid, user_id, kind, state.stage, occurred_at, body))


def stage_changed(
    state: StateView, from_stage: Stage | None, reason: str, occurred_at: datetime
) -> Emitted:
    """`state` is already in its new stage."""
    to_stage = state.stage
    data: dict[str, Any] = {"user_id": state.user_id, "kind": _STAGE_CHANGED}
    if from_stage is not None:
        data["from_stage"] = from_stage
    data["to_stage"] = to_stage
    data["reason"] = reason
    source = from_stage.value if from_stage is not None else ""
    return _transition(state, _STAGE_CHANGED, occurred_at, f"{source}>{to_stage.value}", data)


def milestone_reached(state: StateView, days: int, occurred_at: datetime) -> Emitted:
    data: dict[str, Any] = {
        "user_id": state.user_id,
        "kind": _INACTIVITY_MILESTONE,
        "to_stage": state.stage,
        "reason": Reason.INACTIVITY,
        "milestone_days": days,
    }
    return _transition(state, _INACTIVITY_MILESTONE, occurred_at, f"milestone:{days}", data)


def purchase_level_changed(
    state: StateView, level: PurchaseLevel, occurred_at: datetime
) -> Emitted:
    data: dict[str, Any] = {
        "user_id": state.user_id,
        "kind": _PURCHASE_LEVEL_CHANGED,
        "to_stage": state.stage,
        "reason": Reason.PURCHASE,
        "purchase_level": level,
    }
    return _transition(state, _PURCHASE_LEVEL_CHANGED, occurred_at, f"level:{level.value}", data)


def risk_flag_raised(state: StateView, flag: str, occurred_at: datetime) -> Emitted:
    data: dict[str, Any] = {
        "user_id": state.user_id,
        "kind": _RISK_FLAG_RAISED,
        "to_stage": state.stage,
        "reason": Reason.RISK,
        "flag": flag,
    }
    return _transition(state, _RISK_FLAG_RAISED, occurred_at, f"flag:{flag}", data)
