"""The live view's figures: transitions per simulated day, actions by channel, recall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console
from simulator.stats import LiveStats, recall_rows, recall_total
from simulator.view import final_report, live_view, progress_line

from shared.notifications import OutcomeResult
from shared.transitions import Stage, Transition, TransitionData, TransitionKind
from tests.contracts import sample_outcome, sample_transition

START = datetime(2025, 1, 6, tzinfo=UTC)


def stats_with_data() -> LiveStats:
    stats = LiveStats(start=START, days=60, sim_now=START + timedelta(days=12, hours=8))
    base = sample_transition()
    for day, to_stage, reason in [
        (3, Stage.SILENT, "inactivity"),
        (3, Stage.ACTIVE, "reactivated"),
        (4, Stage.CHURNED, "churn"),
    ]:
        data = base.data.model_copy(update={"to_stage": to_stage, "reason": reason})
        stats.count_transition(Transition.build(data, START + timedelta(days=day, hours=1), reason))
    milestone = TransitionData.model_validate(
        base.data.model_dump() | {"kind": TransitionKind.INACTIVITY_MILESTONE, "milestone_days": 3}
    )
    stats.count_transition(Transition.build(milestone, START + timedelta(days=3), "m3"))
    earlier_run = Transition.build(base.data, START - timedelta(days=2), "old")
    stats.count_transition(earlier_run)
    stats.count_outcome(sample_outcome())
    stats.count_outcome(sample_outcome().model_copy(update={"result": OutcomeResult.SKIPPED}))
    stats.set_stages(
        {"stages": {"prospect": 5, "new": 3, "active": 9, "silent": 2, "churned": 1}, "total": 20}
    )
    stats.recall = recall_rows(
        {
            "window_days": 14,
            "rows": [
                {
                    "rule": "silent_wakeup",
                    "channel": "coupon",
                    "treated": 40,
                    "held_out": 5,
                    "treated_reactivated": 20,
                    "held_out_reactivated": 1,
                },
                {
                    "rule": "silent_wakeup",
                    "channel": "email",
                    "treated": 40,
                    "held_out": 5,
                    "treated_reactivated": 20,
                    "held_out_reactivated": 1,
                },
                {
                    "rule": "churned_winback",
                    "channel": "call",
                    "treated": 10,
                    "held_out": 0,
                    "treated_reactivated": 2,
                    "held_out_reactivated": 0,
                },
            ],
        }
    )
    return stats


def test_stage_changes_are_counted_per_simulated_day_and_reactivations_apart() -> None:
    stats = stats_with_data()
    assert {day: dict(counts) for day, counts in stats.transitions_by_day.items()} == {
        3: {"silent": 1, "reactivated": 1},
        4: {"churned": 1},
    }
    assert stats.actions == {"coupon": {"sent": 1, "skipped": 1}}


def test_recall_adds_up_over_rules_counting_each_rule_once() -> None:
    total = recall_total(stats_with_data().recall)
    assert (total.treated, total.held_out) == (50, 5)
    assert total.treated_rate == 22 / 50
    assert total.held_out_rate == 1 / 5


def test_the_views_show_every_figure() -> None:
    stats = stats_with_data()
    console = Console(record=True, width=160)
    console.print(live_view(stats))
    console.print(final_report(stats))
    text = console.export_text()
    for expected in ("churned", "silent_wakeup", "+24.0 pts", "coupon", "12.3 / 60", "reactivated"):
        assert expected in text
    line = progress_line(stats)
    assert "prospect=5 new=3 active=9 silent=2 churned=1" in line
    assert "treated 44.0% holdout 20.0%" in line
    assert stats.summary()["stages_total"] == 20
