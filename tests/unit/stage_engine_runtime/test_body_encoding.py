"""What the rules emit: a body that is shared.codec.encode's bytes for the Transition
built model by model, written by orjson without building that model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from stage_engine.lifecycle import emit
from stage_engine.lifecycle.emit import Emitted
from stage_engine.lifecycle.rfm import RfmScore
from stage_engine.lifecycle.state import UserState

from shared.codec import encode
from shared.transitions import (
    Profile,
    PurchaseLevel,
    Rfm,
    Stage,
    Transition,
    TransitionData,
    TransitionKind,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_TRAIT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),  # any unicode, escapes included
)
_MOMENTS = st.integers(0, 10**9).map(lambda us: T0 + timedelta(microseconds=us * 997))


@st.composite
def emissions(draw: st.DrawFn) -> tuple[Emitted, Transition]:
    """(what emit made, the same built model by model with Transition.build)."""
    orders = draw(st.integers(0, 50))
    at = draw(_MOMENTS)
    state = UserState(
        user_id=draw(st.text(min_size=1, max_size=30)),
        is_anonymous=draw(st.booleans()),
        stage=draw(st.sampled_from(list(Stage))),
        stage_since=at,
        next_due_at=draw(st.none() | _MOMENTS),
        last_event_at=at,
        first_seen_at=draw(_MOMENTS),
        signed_up_at=draw(st.none() | _MOMENTS),
        last_active_at=draw(st.none() | _MOMENTS),
        orders=orders,
        revenue=draw(st.floats(0, 1e9, allow_nan=False)),
        last_order_at=draw(st.none() | _MOMENTS),
        purchase_level=draw(st.sampled_from(list(PurchaseLevel))),
        rfm=draw(
            st.none()
            | st.builds(
                RfmScore,
                st.integers(1, 5),
                st.integers(1, 5),
                st.integers(1, 5),
                st.sampled_from(["champions", "at_risk"]),
            )
        ),
        risk_flags=tuple(draw(st.lists(st.sampled_from(["activity_drop", "x"]), max_size=2))),
        traits=draw(st.dictionaries(st.text(max_size=10), _TRAIT_VALUES, max_size=4)),
    )
    kind = draw(st.sampled_from(["stage", "milestone", "level", "flag"]))
    base = {"user_id": state.user_id, "to_stage": state.stage, "profile": _profile(state)}
    if kind == "stage":
        before = draw(st.none() | st.just(Stage.NEW))
        data = TransitionData(
            kind=TransitionKind.STAGE_CHANGED, from_stage=before, reason="signup", **base
        )
        source = before.value if before else ""
        return (
            emit.stage_changed(state, before, "signup", at),
            Transition.build(data, at, f"{source}>{state.stage.value}"),
        )
    if kind == "milestone":
        days = draw(st.integers(1, 90))
        data = TransitionData(
            kind=TransitionKind.INACTIVITY_MILESTONE,
            reason="inactivity",
            milestone_days=days,
            **base,
        )
        return emit.milestone_reached(state, days, at), Transition.build(
            data, at, f"milestone:{days}"
        )
    if kind == "level":
        data = TransitionData(
            kind=TransitionKind.PURCHASE_LEVEL_CHANGED,
            reason="purchase",
            purchase_level=PurchaseLevel.REPEAT,
            **base,
        )
        return emit.purchase_level_changed(state, PurchaseLevel.REPEAT, at), Transition.build(
            data, at, "level:repeat"
        )
    data = TransitionData(
        kind=TransitionKind.RISK_FLAG_RAISED, reason="risk", flag="negative_feedback", **base
    )
    return emit.risk_flag_raised(state, "negative_feedback", at), Transition.build(
        data, at, "flag:negative_feedback"
    )


def _profile(state: UserState) -> Profile:
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


@settings(max_examples=500, deadline=None)
@given(emissions())
def test_the_body_is_the_shared_codec_encoding_of_the_model_built_model_by_model(
    pair: tuple[Emitted, Transition],
) -> None:
    emitted, built = pair
    assert emitted.body == encode(built)
    assert emitted.transition == built
    fields = (emitted.id, emitted.subject, emitted.kind, emitted.to_stage, emitted.time)
    assert fields == (built.id, built.subject, built.data.kind, built.data.to_stage, built.time)


def test_emitting_from_the_working_draft_equals_emitting_from_the_frozen_state() -> None:
    state = UserState(
        user_id="u-1",
        is_anonymous=False,
        stage=Stage.ACTIVE,
        stage_since=T0,
        next_due_at=None,
        last_event_at=T0,
        first_seen_at=T0,
        signed_up_at=T0,
        last_active_at=T0,
        orders=2,
        revenue=30.0,
        traits={"email": "u@example.com"},
    )
    draft = state.thaw()
    assert emit.milestone_reached(draft, 7, T0) == emit.milestone_reached(state, 7, T0)
    assert emit.stage_changed(draft, Stage.NEW, "signup", T0) == emit.stage_changed(
        state, Stage.NEW, "signup", T0
    )
    # the transition holds its own copy: changing the draft afterwards changes nothing
    emitted = emit.milestone_reached(draft, 7, T0)
    draft.traits["email"] = "other@example.com"
    assert emitted.transition.data.profile.traits == {"email": "u@example.com"}
