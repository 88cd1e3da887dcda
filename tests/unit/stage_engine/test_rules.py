"""Table-driven rules: each row is a short event history and every transition it must give."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from stage_engine.lifecycle import LifecycleConfig, UserState, advance, expire

from shared.events import Event
from tests.unit.stage_engine.builders import DAY, HOUR, T0, brief, event, order, page, track

Row = tuple[str, dict[str, Any], list[Event | datetime], list[tuple[object, ...]]]

SIGNED_UP = ("stage_changed", None, "new", "signup", None, T0)

ROWS: list[Row] = [
    (
        "the first event with a user id signs up, with no prospect stage",
        {},
        [page(T0)],
        [SIGNED_UP],
    ),
    (
        "a Signed Up track signs up an anonymous visitor",
        {},
        [
            page(T0, user_id=None, anonymous_id="a-9"),
            track("Signed Up", T0 + HOUR, user_id=None, anonymous_id="a-9"),
        ],
        [
            ("stage_changed", None, "prospect", "first_seen", None, T0),
            ("stage_changed", "prospect", "new", "signup", None, T0 + HOUR),
        ],
    ),
    (
        "prospects get no timers",
        {},
        [page(T0, user_id=None, anonymous_id="a-9"), T0 + 400 * DAY],
        [("stage_changed", None, "prospect", "first_seen", None, T0)],
    ),
    (
        "inactive through onboarding: new to silent at its end",
        {"milestone_days": (3,)},
        [page(T0), T0 + 20 * DAY],
        [
            SIGNED_UP,
            ("inactivity_milestone", None, "new", "inactivity", 3, T0 + 3 * DAY),
            ("stage_changed", "new", "silent", "inactivity", None, T0 + 7 * DAY),
        ],
    ),
    (
        "an onboarding longer than churn_after ends straight in churned",
        {"onboarding_days": 40, "milestone_days": (60,)},
        [page(T0), T0 + 41 * DAY],
        [SIGNED_UP, ("stage_changed", "new", "churned", "churn", None, T0 + 40 * DAY)],
    ),
    (
        "activity in onboarding keeps new until the window ends, then active",
        {"milestone_days": (10,)},
        [page(T0), page(T0 + 5 * DAY), T0 + 7 * DAY],
        [SIGNED_UP, ("stage_changed", "new", "active", "onboarding_complete", None, T0 + 7 * DAY)],
    ),
    (
        "an event exactly when silence is due wins over the timer",
        {"milestone_days": (10,)},
        [page(T0), page(T0 + 3 * DAY), page(T0 + 10 * DAY), T0 + 17 * DAY - HOUR],
        [SIGNED_UP, ("stage_changed", "new", "active", "onboarding_complete", None, T0 + 7 * DAY)],
    ),
    (
        "an excluded event is no activity: it does not reactivate",
        {"activity_excluded_events": ("Email Opened",), "milestone_days": (30,)},
        [page(T0), track("Email Opened", T0 + 10 * DAY), T0 + 10 * DAY],
        [SIGNED_UP, ("stage_changed", "new", "silent", "inactivity", None, T0 + 7 * DAY)],
    ),
    (
        "a late activity, older than the silence, does not reverse it",
        {"milestone_days": (30,)},
        [page(T0), T0 + 8 * DAY, page(T0 + 6 * DAY), T0 + 40 * DAY],
        [
            SIGNED_UP,
            ("stage_changed", "new", "silent", "inactivity", None, T0 + 7 * DAY),
            # Churn counts from the late activity now known: day 6 + 30.
            ("stage_changed", "silent", "churned", "churn", None, T0 + 36 * DAY),
            ("inactivity_milestone", None, "churned", "inactivity", 30, T0 + 36 * DAY),
        ],
    ),
    (
        "orders climb none, first_purchase, repeat, loyal",
        {"loyal_order_count": 3},
        [order(20.0, T0), order(20.0, T0 + HOUR), order(20.0, T0 + 2 * HOUR)],
        [
            SIGNED_UP,
            ("purchase_level_changed", None, "new", "purchase", "first_purchase", T0),
            ("purchase_level_changed", None, "new", "purchase", "repeat", T0 + HOUR),
            ("purchase_level_changed", None, "new", "purchase", "loyal", T0 + 2 * HOUR),
        ],
    ),
    (
        "an Order Completed without revenue or total is no purchase",
        {},
        [track("Order Completed", T0, properties={"revenue": "n/a"})],
        [SIGNED_UP],
    ),
    (
        "total stands in for revenue",
        {},
        [track("Order Completed", T0, properties={"total": "19.90"})],
        [SIGNED_UP, ("purchase_level_changed", None, "new", "purchase", "first_purchase", T0)],
    ),
    (
        "activity falling under half of the user's own baseline raises a flag",
        {"milestone_days": (100,), "churn_after_days": 200},
        [*(page(T0 + n * DAY) for n in range(6)), page(T0 + 55 * DAY)],
        [
            SIGNED_UP,
            ("stage_changed", "new", "active", "onboarding_complete", None, T0 + 7 * DAY),
            ("stage_changed", "active", "silent", "inactivity", None, T0 + 12 * DAY),
            ("stage_changed", "silent", "active", "reactivated", None, T0 + 55 * DAY),
            ("risk_flag_raised", None, "active", "risk", "activity_drop", T0 + 55 * DAY),
        ],
    ),
    (
        "a complaint raises negative_feedback once while it lasts",
        {"milestone_days": (100,)},
        [
            track("Complaint Filed", T0),
            track("Negative Review", T0 + DAY),
            track("Complaint Filed", T0 + 40 * DAY),
        ],
        [
            SIGNED_UP,
            ("risk_flag_raised", None, "new", "risk", "negative_feedback", T0),
            ("stage_changed", "new", "active", "onboarding_complete", None, T0 + 7 * DAY),
            ("stage_changed", "active", "silent", "inactivity", None, T0 + 8 * DAY),
            ("stage_changed", "silent", "churned", "churn", None, T0 + 31 * DAY),
            ("stage_changed", "churned", "active", "reactivated", None, T0 + 40 * DAY),
            ("risk_flag_raised", None, "active", "risk", "negative_feedback", T0 + 40 * DAY),
        ],
    ),
    (
        "a late complaint whose window has closed raises nothing",
        {"milestone_days": (100,)},
        [page(T0 + 60 * DAY), track("Complaint Filed", T0)],
        [("stage_changed", None, "new", "signup", None, T0 + 60 * DAY)],
    ),
    (
        "identify and group are no activity",
        {"milestone_days": (100,)},
        [page(T0), T0 + 8 * DAY, event("identify", T0 + 9 * DAY), event("group", T0 + 9 * DAY)],
        [SIGNED_UP, ("stage_changed", "new", "silent", "inactivity", None, T0 + 7 * DAY)],
    ),
]


@pytest.mark.parametrize(
    ("what", "overrides", "script", "expected"), ROWS, ids=[r[0] for r in ROWS]
)
def test_rule(
    what: str,
    overrides: dict[str, Any],
    script: list[Event | datetime],
    expected: list[tuple[object, ...]],
) -> None:
    config = LifecycleConfig(**overrides)
    state: UserState | None = None
    got: list[tuple[object, ...]] = []
    for step in script:
        if isinstance(step, datetime):
            assert state is not None
            state, transitions = expire(state, step, config)
        else:
            state, transitions = advance(state, step, config)
        got.extend(brief(t) for t in transitions)
    assert got == expected, what
