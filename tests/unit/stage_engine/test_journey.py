"""A scripted user journey through every stage, with the exact transitions and their times."""

from __future__ import annotations

from datetime import datetime

from stage_engine.lifecycle import (
    LifecycleConfig,
    UserState,
    advance,
    expire,
    merge_anonymous,
    profile_of,
)

from shared.transitions import PurchaseLevel, Stage
from tests.unit.stage_engine.builders import DAY, HOUR, T0, brief, event, order, page, track

CONFIG = LifecycleConfig()
SIGNUP = T0 + HOUR

# Each row: what happens, then the transitions it must produce, exactly.
JOURNEY: list[tuple[str, object, list[tuple[object, ...]]]] = [
    (
        "anonymous visit",
        page(T0, user_id=None, anonymous_id="a-1"),
        [("stage_changed", None, "prospect", "first_seen", None, T0)],
    ),
    ("identify joins a-1 to u-1", "merge", []),
    (
        "identify signs up",
        event(
            "identify",
            SIGNUP,
            user_id="u-1",
            anonymous_id="a-1",
            traits={"email": "ann@example.com", "plan": "gold"},
        ),
        [("stage_changed", "prospect", "new", "signup", None, SIGNUP)],
    ),
    (
        "first order",
        order(40.0, T0 + DAY),
        [("purchase_level_changed", None, "new", "purchase", "first_purchase", T0 + DAY)],
    ),
    (
        "second order",
        order(60.0, T0 + 2 * DAY),
        [("purchase_level_changed", None, "new", "purchase", "repeat", T0 + 2 * DAY)],
    ),
    (
        "silence: milestones, end of onboarding, silent, churned",
        T0 + 40 * DAY - HOUR,
        [
            ("inactivity_milestone", None, "new", "inactivity", 3, T0 + 5 * DAY),
            ("stage_changed", "new", "active", "onboarding_complete", None, SIGNUP + 7 * DAY),
            ("stage_changed", "active", "silent", "inactivity", None, T0 + 9 * DAY),
            ("inactivity_milestone", None, "silent", "inactivity", 7, T0 + 9 * DAY),
            ("inactivity_milestone", None, "silent", "inactivity", 14, T0 + 16 * DAY),
            ("stage_changed", "silent", "churned", "churn", None, T0 + 32 * DAY),
            ("inactivity_milestone", None, "churned", "inactivity", 30, T0 + 32 * DAY),
        ],
    ),
    (
        "comes back",
        track("Product Viewed", T0 + 40 * DAY),
        [("stage_changed", "churned", "active", "reactivated", None, T0 + 40 * DAY)],
    ),
    (
        "complains",
        track("Complaint Filed", T0 + 41 * DAY),
        [("risk_flag_raised", None, "active", "risk", "negative_feedback", T0 + 41 * DAY)],
    ),
    (
        "a small order",
        order(10.0, T0 + 42 * DAY),
        [("risk_flag_raised", None, "active", "risk", "order_value_drop", T0 + 42 * DAY)],
    ),
    (
        "silent again; the complaint ages out; churned again",
        T0 + 100 * DAY,
        [
            ("inactivity_milestone", None, "active", "inactivity", 3, T0 + 45 * DAY),
            ("stage_changed", "active", "silent", "inactivity", None, T0 + 49 * DAY),
            ("inactivity_milestone", None, "silent", "inactivity", 7, T0 + 49 * DAY),
            ("inactivity_milestone", None, "silent", "inactivity", 14, T0 + 56 * DAY),
            ("stage_changed", "silent", "churned", "churn", None, T0 + 72 * DAY),
            ("inactivity_milestone", None, "churned", "inactivity", 30, T0 + 72 * DAY),
        ],
    ),
]


def _play() -> tuple[UserState, list[list[tuple[object, ...]]]]:
    anonymous: UserState | None = None
    user: UserState | None = None
    produced: list[list[tuple[object, ...]]] = []
    for _, action, _ in JOURNEY:
        if action == "merge":
            assert anonymous is not None
            user, transitions = merge_anonymous(None, anonymous, "u-1", CONFIG)
        elif isinstance(action, datetime):
            assert user is not None
            user, transitions = expire(user, action, CONFIG)
        elif user is None:
            anonymous, transitions = advance(anonymous, action, CONFIG)  # type: ignore[arg-type]
        else:
            user, transitions = advance(user, action, CONFIG)  # type: ignore[arg-type]
        produced.append([brief(t) for t in transitions])
    assert user is not None
    return user, produced


def test_each_step_of_the_journey_gives_exactly_the_expected_transitions() -> None:
    _, produced = _play()
    for (what, _, expected), got in zip(JOURNEY, produced, strict=True):
        assert got == expected, what


def test_the_journey_ends_churned_with_its_value_and_risk_kept() -> None:
    user, _ = _play()
    assert user.user_id == "u-1"
    assert not user.is_anonymous
    assert user.stage is Stage.CHURNED
    assert user.stage_since == T0 + 72 * DAY
    assert user.first_seen_at == T0
    assert user.signed_up_at == SIGNUP
    assert user.last_active_at == T0 + 42 * DAY
    assert (user.orders, user.revenue, user.last_order_value) == (3, 110.0, 10.0)
    assert user.first_order_at == T0 + DAY
    assert user.last_order_at == T0 + 42 * DAY
    assert user.purchase_level is PurchaseLevel.REPEAT
    assert user.risk_flags == ("order_value_drop",)  # the complaint aged out at day 71
    assert user.milestone_reached_days == 30
    assert user.next_due_at == T0 + 102 * DAY  # the 60-day milestone
    assert user.traits == {"email": "ann@example.com"}  # "plan" is not allow-listed


def test_the_profile_snapshot_shows_the_user_as_the_transition_became_true() -> None:
    anonymous, _ = advance(None, page(T0, user_id=None, anonymous_id="a-1"), CONFIG)
    user, _ = merge_anonymous(None, anonymous, "u-1", CONFIG)
    identify = event("identify", SIGNUP, traits={"email": "ann@example.com"})
    user, _ = advance(user, identify, CONFIG)
    user, _ = advance(user, order(40.0, T0 + DAY), CONFIG)
    _, fired = expire(user, T0 + 9 * DAY, CONFIG)
    silent = next(t for t in fired if t.to_stage is Stage.SILENT and t.transition.data.from_stage)
    profile = silent.transition.data.profile
    assert silent.subject == "u-1"
    assert profile.stage is Stage.SILENT
    assert profile.stage_since == T0 + 8 * DAY
    assert profile.orders == 1
    assert profile.average_order_value == 40.0
    assert profile.traits == {"email": "ann@example.com"}
    assert profile.rfm is not None
    assert (profile.rfm.recency, profile.rfm.frequency, profile.rfm.segment) == (
        5,
        1,
        "new_customers",
    )
    assert profile_of(user).stage is Stage.NEW
