"""The live view's figures: transitions per simulated day, actions by channel, recall, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from simulator.stats import LiveStats, recall_rows, recall_total
from simulator.view import final_report, header, live_view, progress_line

from shared.notifications import OutcomeResult
from shared.transitions import Stage, Transition, TransitionData, TransitionKind
from tests.contracts import sample_outcome, sample_transition

START = datetime(2025, 1, 6, tzinfo=UTC)


def recall_row(rule: str, channel: str, counts: tuple[int, int, int, int]) -> dict[str, Any]:
    treated, held_out, treated_back, held_out_back = counts
    return {
        "rule": rule,
        "channel": channel,
        "treated": treated,
        "held_out": held_out,
        "treated_reactivated": treated_back,
        "held_out_reactivated": held_out_back,
    }


def stats_with_data() -> LiveStats:
    stats = LiveStats(start=START, days=60, sim_now=START + timedelta(days=12, hours=8))
    base = sample_transition()
    moves = {}
    for day, to_stage, reason in [
        (3, Stage.SILENT, "inactivity"),
        (3, Stage.ACTIVE, "reactivated"),
        (4, Stage.CHURNED, "churn"),
    ]:
        data = base.data.model_copy(update={"to_stage": to_stage, "reason": reason})
        moves[reason] = Transition.build(data, START + timedelta(days=day, hours=1), reason)
        stats.count_transition(moves[reason])
    milestone = TransitionData.model_validate(
        base.data.model_dump() | {"kind": TransitionKind.INACTIVITY_MILESTONE, "milestone_days": 3}
    )
    stats.count_transition(Transition.build(milestone, START + timedelta(days=5), "m3"))
    stats.count_transition(Transition.build(base.data, START - timedelta(days=2), "earlier run"))
    stats.count_outcome(sample_outcome())  # of a transition this run never saw
    stats.count_outcome(sample_outcome().model_copy(update={"result": OutcomeResult.SKIPPED}))
    # silent_wakeup answers the day-3 move to silent, 6 simulated hours after it.
    stats.count_outcome(
        sample_outcome().model_copy(
            update={
                "transition_id": moves["inactivity"].id,
                "rule": "silent_wakeup",
                "occurred_at": moves["inactivity"].time + timedelta(hours=6),
            }
        )
    )
    stats.set_stages(
        {"stages": {"prospect": 5, "new": 3, "active": 9, "silent": 2, "churned": 1}, "total": 20}
    )
    rows = [
        recall_row("silent_wakeup", "coupon", (40, 5, 20, 1)),
        recall_row("silent_wakeup", "email", (40, 5, 20, 1)),
        recall_row("welcome", "email", (10, 2, 2, 0)),
    ]
    stats.recall = recall_rows({"window_days": 14, "rows": rows})
    return stats


def test_stage_changes_are_counted_per_simulated_day_and_reactivations_apart() -> None:
    stats = stats_with_data()
    assert {day: dict(counts) for day, counts in stats.transitions_by_day.items()} == {
        3: {"silent": 1, "reactivated": 1},
        4: {"churned": 1},
    }
    assert stats.actions == {"coupon": {"sent": 2, "skipped": 1}}


def test_lag_of_the_engine_and_of_the_notifier_in_simulated_days() -> None:
    stats = stats_with_data()
    assert stats.engine_time == START + timedelta(days=5)
    assert stats.engine_lag_days() == (timedelta(days=7, hours=8) / timedelta(days=1))
    assert stats.notifier_lag_days() == 0.25


def test_recall_counts_each_rule_once_and_the_headline_only_recall_rules() -> None:
    stats = stats_with_data()
    everything = recall_total(stats.recall)
    assert (everything.treated, everything.held_out) == (50, 7)
    assert stats.recall_rules == {"silent_wakeup"}
    headline = stats.recall_headline()
    assert (headline.treated, headline.held_out) == (40, 5)
    assert headline.treated_rate == 0.5
    assert headline.held_out_rate == 0.2


def test_the_views_show_every_figure() -> None:
    stats = stats_with_data()
    console = Console(record=True, width=160)
    console.print(live_view(stats))
    console.print(final_report(stats))
    text = console.export_text()
    for expected in ("churned", "silent_wakeup", "recall rules", "+30.0 pts", "12.3 / 60"):
        assert expected in text
    line = progress_line(stats)
    assert "prospect=5 new=3 active=9 silent=2 churned=1" in line
    assert "treated 50.0% holdout 20.0%" in line
    assert "lag engine 7.3 d notifier 0.2 d" in line
    assert stats.summary()["recall"]["rules"] == ["silent_wakeup"]


def test_the_finished_header_says_how_long_the_days_and_the_drain_took() -> None:
    stats = LiveStats(start=START, days=60, sim_now=START + timedelta(days=60))
    stats.days_seconds, stats.drain_seconds, stats.finished = 71.4, 9.6, True
    console = Console(width=80, record=True)
    console.print(header(stats))
    text = console.export_text()
    assert "wall time: 60 days in 71 s, settled 10 s later" in text
    assert "finished" in text


def test_the_header_says_which_service_the_days_waited_for_within_its_width() -> None:
    stats = LiveStats(start=START, days=60, sim_now=START + timedelta(days=9))
    stats.held_seconds = 11.2
    stats.held_seconds_by_service.update({"stage engine": 1.6, "notifier": 9.8})
    console = Console(width=80, record=True)
    console.print(header(stats))
    text = console.export_text()
    assert "waited for the pipeline 11 s: stage engine 2 s, notifier 10 s" in text
    assert stats.summary()["held_seconds_by_service"] == {"stage engine": 1.6, "notifier": 9.8}


def test_a_send_held_by_quiet_hours_does_not_count_as_notifier_lag() -> None:
    stats = stats_with_data()
    silent = next(iter(stats.transition_times))
    held = sample_outcome().model_copy(
        update={"transition_id": silent, "action": "push", "result": OutcomeResult.DEFERRED}
    )
    stats.count_outcome(held)
    later = START + timedelta(days=4, hours=8)  # the next morning after its day-3 transition
    stats.count_outcome(
        held.model_copy(update={"result": OutcomeResult.SENT, "occurred_at": later})
    )
    assert stats.notifier_lag_days() == 0.25  # still the undeferred send's 6 hours
    prompt = sample_outcome().model_copy(
        update={"transition_id": silent, "action": "email", "occurred_at": later}
    )
    for _ in range(2):  # two late sends of three: the median is late
        stats.count_outcome(prompt)
    assert stats.notifier_lag_days() == timedelta(days=1, hours=7) / timedelta(days=1)


def test_one_late_send_among_prompt_ones_is_not_a_backlog() -> None:
    stats = stats_with_data()  # one send, 6 hours after its transition
    silent = next(iter(stats.transition_times))
    late = sample_outcome().model_copy(
        update={"transition_id": silent, "occurred_at": START + timedelta(days=6, hours=1)}
    )
    stats.count_outcome(late)  # 3 days after its transition
    stats.count_outcome(late.model_copy(update={"occurred_at": START + timedelta(days=3, hours=7)}))
    assert stats.notifier_lag_days() == 0.25
