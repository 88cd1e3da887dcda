"""Which actions the playbook plans for which transition (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest
from notifier.playbook import Playbook, load_playbook, parse_playbook, plan

from shared.transitions import PurchaseLevel, Stage, TransitionKind
from tests.unit.notifier.factories import make_transition

Kind = TransitionKind


@pytest.fixture(scope="module")
def default() -> Playbook:
    # No holdout, so every planned action shows; holdout has its own tests.
    return load_playbook(None).model_copy(update={"holdout_share": 0.0})


@pytest.mark.parametrize(
    ("transition", "expected"),
    [
        (
            make_transition(to_stage=Stage.NEW, from_stage=Stage.PROSPECT),
            ["welcome/first_order_coupon", "welcome/welcome_email"],
        ),
        (
            make_transition(Kind.INACTIVITY_MILESTONE, to_stage=Stage.NEW, milestone_days=3),
            ["onboarding_day3/nudge_email"],
        ),
        # Milestone 3 when no longer new, or another milestone while new: no nudge.
        (make_transition(Kind.INACTIVITY_MILESTONE, to_stage=Stage.ACTIVE, milestone_days=3), []),
        (make_transition(Kind.INACTIVITY_MILESTONE, to_stage=Stage.NEW, milestone_days=14), []),
        (
            make_transition(to_stage=Stage.SILENT),
            [
                "silent_wakeup/wakeup_coupon",
                "silent_wakeup/wakeup_email",
                "silent_wakeup/wakeup_push",
            ],
        ),
        (
            make_transition(to_stage=Stage.CHURNED, from_stage=Stage.SILENT),
            [
                "churned_winback/winback_coupon",
                "churned_winback/winback_email",
                "churned_winback/recall_call",
            ],
        ),
        (
            make_transition(
                Kind.PURCHASE_LEVEL_CHANGED,
                to_stage=Stage.ACTIVE,
                purchase_level=PurchaseLevel.FIRST_PURCHASE,
            ),
            ["first_purchase_thanks/thanks_email"],
        ),
        (
            make_transition(
                Kind.PURCHASE_LEVEL_CHANGED,
                to_stage=Stage.ACTIVE,
                purchase_level=PurchaseLevel.REPEAT,
            ),
            ["repeat_purchase_thanks/thanks_email"],
        ),
        (
            make_transition(
                Kind.PURCHASE_LEVEL_CHANGED,
                to_stage=Stage.ACTIVE,
                purchase_level=PurchaseLevel.LOYAL,
            ),
            ["repeat_purchase_thanks/thanks_email"],
        ),
        (
            make_transition(Kind.RISK_FLAG_RAISED, to_stage=Stage.ACTIVE, flag="frequency_drop"),
            ["churn_risk_care/care_email"],
        ),
        # Reactivation is what the playbook measures, not something it answers.
        (make_transition(to_stage=Stage.ACTIVE, from_stage=Stage.SILENT), []),
        (make_transition(to_stage=Stage.ACTIVE, from_stage=Stage.NEW), []),
    ],
)
def test_the_default_playbook_answers_each_transition(
    default: Playbook, transition: Any, expected: list[str]
) -> None:
    planned = plan(transition, default)
    assert [action.ledger_key for action in planned] == expected
    assert all(not action.in_holdout for action in planned)


def one_rule(match: dict[str, Any]) -> Playbook:
    return parse_playbook(
        {
            "holdout_share": 0,
            "rules": [
                {
                    "name": "r",
                    "match": match,
                    "actions": [{"name": "hook", "channel": "webhook", "params": {}}],
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("match", "transition", "matches"),
    [
        ({"to_stage": ["silent", "churned"]}, make_transition(to_stage=Stage.CHURNED), True),
        ({"to_stage": ["silent", "churned"]}, make_transition(to_stage=Stage.ACTIVE), False),
        ({"from_stage": "active"}, make_transition(from_stage=Stage.ACTIVE), True),
        ({"from_stage": "active"}, make_transition(from_stage=None), False),
        # Several conditions: all must hold.
        (
            {"kind": "stage_changed", "to_stage": "silent", "rfm_segment": "champions"},
            make_transition(rfm_segment="champions"),
            True,
        ),
        (
            {"kind": "stage_changed", "to_stage": "silent", "rfm_segment": "champions"},
            make_transition(rfm_segment="hibernating"),
            False,
        ),
        ({"rfm_segment": "champions"}, make_transition(rfm_segment=None), False),
        # purchase_level / flag fall back on the profile when the transition has none.
        (
            {"to_stage": "silent", "purchase_level": "loyal"},
            make_transition(profile_purchase_level=PurchaseLevel.LOYAL),
            True,
        ),
        (
            {"to_stage": "silent", "purchase_level": "loyal"},
            make_transition(profile_purchase_level=PurchaseLevel.REPEAT),
            False,
        ),
        (
            {"purchase_level": "repeat"},
            make_transition(
                Kind.PURCHASE_LEVEL_CHANGED,
                purchase_level=PurchaseLevel.REPEAT,
                profile_purchase_level=PurchaseLevel.FIRST_PURCHASE,
            ),
            True,
        ),
        ({"flag": "negative_feedback"}, make_transition(risk_flags=("negative_feedback",)), True),
        ({"flag": "negative_feedback"}, make_transition(risk_flags=("aov_drop",)), False),
        (
            {"kind": "risk_flag_raised", "flag": ["aov_drop", "negative_feedback"]},
            make_transition(Kind.RISK_FLAG_RAISED, flag="aov_drop"),
            True,
        ),
        (
            {"kind": "risk_flag_raised", "flag": "negative_feedback"},
            make_transition(
                Kind.RISK_FLAG_RAISED, flag="aov_drop", risk_flags=("negative_feedback",)
            ),
            False,
        ),
        (
            {"milestone_days": [7, 14]},
            make_transition(Kind.INACTIVITY_MILESTONE, milestone_days=14),
            True,
        ),
        (
            {"milestone_days": 7},
            make_transition(Kind.INACTIVITY_MILESTONE, milestone_days=3),
            False,
        ),
    ],
)
def test_conditions(match: dict[str, Any], transition: Any, matches: bool) -> None:
    assert bool(plan(transition, one_rule(match))) is matches


def test_planned_params_are_the_validated_ones_with_defaults() -> None:
    [action] = plan(make_transition(), one_rule({"to_stage": "silent"}))
    assert action.params == {"event": "lifecycle.action"}
    assert action.ledger_key == "r/hook"
    assert action.channel == "webhook"


def test_the_same_transition_always_plans_the_same_actions() -> None:
    playbook = load_playbook(None)
    transitions = [make_transition(to_stage=Stage.SILENT, user_id=f"u-{n}") for n in range(200)]
    assert [plan(t, playbook) for t in transitions] == [plan(t, playbook) for t in transitions]
