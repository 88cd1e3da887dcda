"""The outbox body is shared.codec.encode's bytes, made by the faster serializer path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from stage_engine.lifecycle import emit
from stage_engine.lifecycle.rfm import RfmScore
from stage_engine.lifecycle.state import UserState
from stage_engine.store.transitions import encode_body

from shared.codec import encode
from shared.transitions import PurchaseLevel, Stage, Transition

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
def transitions(draw: st.DrawFn) -> Transition:
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
    if kind == "stage":
        return emit.stage_changed(state, draw(st.none() | st.just(Stage.NEW)), "signup", at)
    if kind == "milestone":
        return emit.milestone_reached(state, draw(st.integers(1, 90)), at)
    if kind == "level":
        return emit.purchase_level_changed(state, PurchaseLevel.REPEAT, at)
    return emit.risk_flag_raised(state, "negative_feedback", at)


@settings(max_examples=300, deadline=None)
@given(transitions())
def test_the_body_is_the_shared_codec_encoding(transition: Transition) -> None:
    assert encode_body(transition) == encode(transition)


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
    assert emitted.data.profile.traits == {"email": "u@example.com"}
