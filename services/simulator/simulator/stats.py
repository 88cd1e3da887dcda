"""What the live view shows, gathered from the topics and the services' HTTP APIs."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.notifications import NotificationOutcome, OutcomeResult
from shared.transitions import Stage, Transition, TransitionKind

STAGES = tuple(stage.value for stage in Stage)
REACTIVATED = "reactivated"
# Columns of "transitions per simulated day": entering each stage, and returns.
TRANSITION_COLUMNS = (*STAGES, REACTIVATED)
MAX_REMEMBERED_TRANSITIONS = 200_000
LAG_SAMPLES = 25


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


def recall_total(rows: list[RecallRow], rules: set[str] | None = None) -> RecallRow:
    """All rules together (or those named in `rules`), each rule counted once.

    The rows of one rule's channels describe the same audience, so summing them
    would count a user once per channel; each rule's largest row stands for it.
    """
    per_rule: dict[str, RecallRow] = {}
    for row in rows:
        if rules is not None and row.rule not in rules:
            continue
        kept = per_rule.get(row.rule)
        if kept is None or row.treated + row.held_out > kept.treated + kept.held_out:
            per_rule[row.rule] = row
    chosen = per_rule.values()
    return RecallRow(
        rule="all rules" if rules is None else "recall rules",
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
    # How far behind each service is, in simulated time. The engine: the newest
    # transition on the topic (its event clock). The notifier: how old, on its own
    # event clock, the transitions of the latest messages it sent were (an outcome names
    # its transition; the watch saw that transition's time): the median of the last
    # LAG_SAMPLES sends, so one send that waited (behind its rule's coupon, say) does
    # not pause the simulation, while a backlog, which delays most sends, does.
    engine_time: datetime | None = None
    notifier_lags: deque[timedelta] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))
    held_seconds: float = 0.0  # wall time simulated time waited for the pipeline
    # The same wait, by the service that was behind (both, when both were).
    held_seconds_by_service: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float)
    )
    days_seconds: float = 0.0  # wall time from the first simulated day to the last one sent
    drain_seconds: float = 0.0  # wall time after the last day until the figures settled
    transition_times: dict[str, datetime] = field(default_factory=dict)
    # Rules seen answering a user's move to silent or churned: their reactivation rate
    # is the recall rate proper (the other rules' audiences were still active).
    recall_rules: set[str] = field(default_factory=set)
    _lapsed: set[str] = field(default_factory=set)  # ids of such transitions
    _deferred: set[tuple[str, str]] = field(default_factory=set)  # (transition, action)

    @property
    def sim_day(self) -> float:
        return (self.sim_now - self.start) / timedelta(days=1)

    def engine_lag_days(self) -> float | None:
        """Simulated days between the simulation and the newest transition."""
        if self.engine_time is None:
            return None
        return max(0.0, (self.sim_now - self.engine_time) / timedelta(days=1))

    def notifier_lag_days(self) -> float | None:
        """Simulated days between a transition and the notifier's send for it, lately."""
        if not self.notifier_lags:
            return None
        ordered = sorted(self.notifier_lags)
        return max(0.0, ordered[len(ordered) // 2] / timedelta(days=1))  # the median

    def count_transition(self, transition: Transition) -> None:
        if self.engine_time is None or transition.time > self.engine_time:
            self.engine_time = transition.time
        if len(self.transition_times) >= MAX_REMEMBERED_TRANSITIONS:
            # Bounded memory: forget the older half (their outcomes are long in).
            keep = sorted(self.transition_times.items(), key=lambda item: item[1])
            self.transition_times = dict(keep[len(keep) // 2 :])
        self.transition_times[transition.id] = transition.time
        lapsed = transition.data.to_stage in (Stage.SILENT, Stage.CHURNED)
        if transition.data.kind is TransitionKind.STAGE_CHANGED and lapsed:
            if len(self._lapsed) >= MAX_REMEMBERED_TRANSITIONS:
                self._lapsed.clear()  # bounded memory; rules seen so far are kept
            self._lapsed.add(transition.id)
        data = transition.data
        if data.kind is not TransitionKind.STAGE_CHANGED:
            return
        day = int((transition.time - self.start) / timedelta(days=1))
        if day < 0:
            return  # from an earlier run of the same pipeline
        column = REACTIVATED if data.reason == REACTIVATED else data.to_stage.value
        self.transitions_by_day.setdefault(day, Counter())[column] += 1

    def count_outcome(self, outcome: NotificationOutcome) -> None:
        # Sends measure the notifier's backlog: skips and deferrals are decided at once,
        # while sends wait for a free sender. A send held by quiet hours is left out:
        # it waited on purpose, until a morning up to a day and a half after its
        # transition (quiet hours are judged at the notifier's clock, the newest
        # transition it has seen), and would read as a backlog that is not there.
        if outcome.transition_id in self._lapsed:
            self.recall_rules.add(outcome.rule)
        action = (outcome.transition_id, outcome.action)
        if outcome.result is OutcomeResult.DEFERRED:
            if len(self._deferred) >= MAX_REMEMBERED_TRANSITIONS:
                self._deferred.clear()  # bounded memory; at worst a few late sends count
            self._deferred.add(action)
        transition_time = self.transition_times.get(outcome.transition_id)
        if outcome.result is OutcomeResult.SENT and action in self._deferred:
            self._deferred.discard(action)
        elif outcome.result is OutcomeResult.SENT and transition_time is not None:
            self.notifier_lags.append(outcome.occurred_at - transition_time)
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

    def recall_headline(self) -> RecallRow:
        """Recall rules only, once they are known; every rule until then."""
        return recall_total(self.recall, self.recall_rules or None)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest, for the final report file and the headless lines."""
        total = self.recall_headline()
        return {
            "sim_day": round(self.sim_day, 2),
            "days": self.days,
            "calls_sent": self.calls_sent,
            "calls_rejected": self.calls_rejected,
            "answers_planned": self.answers_planned,
            "held_seconds": round(self.held_seconds, 1),
            "held_seconds_by_service": {
                name: round(seconds, 1) for name, seconds in self.held_seconds_by_service.items()
            },
            "days_seconds": round(self.days_seconds, 1),
            "drain_seconds": round(self.drain_seconds, 1),
            "stages": dict(self.stages),
            "stages_total": self.stages_total,
            "transitions": dict(self.transitions_total()),
            "actions": {channel: dict(counts) for channel, counts in sorted(self.actions.items())},
            "recall": {
                "rules": sorted(self.recall_rules),
                "treated": total.treated,
                "held_out": total.held_out,
                "treated_rate": total.treated_rate,
                "held_out_rate": total.held_out_rate,
            },
        }
