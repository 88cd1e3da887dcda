"""What the live view shows, gathered from the topics and the services' HTTP APIs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.notifications import NotificationOutcome
from shared.transitions import Stage, Transition, TransitionKind

STAGES = tuple(stage.value for stage in Stage)
REACTIVATED = "reactivated"
# Columns of "transitions per simulated day": entering each stage, and returns.
TRANSITION_COLUMNS = (*STAGES, REACTIVATED)


@dataclass(frozen=True, slots=True)
class RecallRow:
    rule: str
    channel: str
    treated: int
    held_out: int
    treated_reactivated: int
    held_out_reactivated: int

    @property
    def treated_rate(self) -> float | None:
        return self.treated_reactivated / self.treated if self.treated else None

    @property
    def held_out_rate(self) -> float | None:
        return self.held_out_reactivated / self.held_out if self.held_out else None


def recall_rows(report: dict[str, Any]) -> list[RecallRow]:
    """The rows of the notifier's `GET /v1/reports/recall`, tolerating missing counts."""
    rows = []
    for raw in report.get("rows", []):
        if not isinstance(raw, dict):
            continue
        rows.append(
            RecallRow(
                rule=str(raw.get("rule", "?")),
                channel=str(raw.get("channel", "?")),
                treated=int(raw.get("treated") or 0),
                held_out=int(raw.get("held_out") or 0),
                treated_reactivated=int(raw.get("treated_reactivated") or 0),
                held_out_reactivated=int(raw.get("held_out_reactivated") or 0),
            )
        )
    return rows


def recall_total(rows: list[RecallRow]) -> RecallRow:
    """All rules together, each rule counted once.

    The rows of one rule's channels describe the same audience, so summing them
    would count a user once per channel; each rule's largest row stands for it.
    """
    per_rule: dict[str, RecallRow] = {}
    for row in rows:
        kept = per_rule.get(row.rule)
        if kept is None or row.treated + row.held_out > kept.treated + kept.held_out:
            per_rule[row.rule] = row
    chosen = per_rule.values()
    return RecallRow(
        rule="all rules",
        channel="",
        treated=sum(row.treated for row in chosen),
        held_out=sum(row.held_out for row in chosen),
        treated_reactivated=sum(row.treated_reactivated for row in chosen),
        held_out_reactivated=sum(row.held_out_reactivated for row in chosen),
    )


@dataclass(slots=True)
class LiveStats:
    start: datetime
    days: int
    sim_now: datetime
    calls_sent: int = 0
    calls_rejected: int = 0
    answers_planned: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    stages_total: int = 0
    transitions_by_day: dict[int, Counter[str]] = field(default_factory=dict)
    actions: dict[str, Counter[str]] = field(default_factory=dict)
    recall: list[RecallRow] = field(default_factory=list)
    undecodable_records: int = 0
    finished: bool = False

    @property
    def sim_day(self) -> float:
        return (self.sim_now - self.start) / timedelta(days=1)

    def count_transition(self, transition: Transition) -> None:
        data = transition.data
        if data.kind is not TransitionKind.STAGE_CHANGED:
            return
        day = int((transition.time - self.start) / timedelta(days=1))
        if day < 0:
            return  # from an earlier run of the same pipeline
        column = REACTIVATED if data.reason == REACTIVATED else data.to_stage.value
        self.transitions_by_day.setdefault(day, Counter())[column] += 1

    def count_outcome(self, outcome: NotificationOutcome) -> None:
        self.actions.setdefault(outcome.channel, Counter())[outcome.result.value] += 1

    def set_stages(self, body: dict[str, Any]) -> None:
        stages = body.get("stages")
        if isinstance(stages, dict):
            self.stages = {str(name): int(count) for name, count in stages.items()}
            self.stages_total = int(body.get("total") or sum(self.stages.values()))

    def transitions_total(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.transitions_by_day.values():
            total.update(counts)
        return total

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest, for the final report file and the headless lines."""
        total = recall_total(self.recall)
        return {
            "sim_day": round(self.sim_day, 2),
            "days": self.days,
            "calls_sent": self.calls_sent,
            "calls_rejected": self.calls_rejected,
            "answers_planned": self.answers_planned,
            "stages": dict(self.stages),
            "stages_total": self.stages_total,
            "transitions": dict(self.transitions_total()),
            "actions": {channel: dict(counts) for channel, counts in sorted(self.actions.items())},
            "recall": {
                "treated": total.treated,
                "held_out": total.held_out,
                "treated_rate": total.treated_rate,
                "held_out_rate": total.held_out_rate,
            },
        }
