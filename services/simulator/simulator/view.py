"""The live view (rich) and its plain-text twin for headless runs."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from simulator.stats import STAGES, TRANSITION_COLUMNS, LiveStats, RecallRow, recall_total

RESULTS = ("sent", "skipped", "deferred", "failed")
BAR_WIDTH = 30


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _lift(row: RecallRow) -> str:
    if row.treated_rate is None or row.held_out_rate is None:
        return "n/a"
    return f"{(row.treated_rate - row.held_out_rate) * 100:+.1f} pts"


def stages_table(stats: LiveStats) -> Table:
    table = Table(title="users per stage (GET /v1/stages)", title_justify="left", expand=True)
    table.add_column("stage")
    table.add_column("users", justify="right")
    table.add_column("", ratio=1)
    biggest = max(stats.stages.values(), default=0) or 1
    for stage in STAGES:
        count = stats.stages.get(stage, 0)
        table.add_row(stage, str(count), "█" * round(BAR_WIDTH * count / biggest))
    table.add_row("total", str(stats.stages_total), "")
    return table


def transitions_table(stats: LiveStats, *, last_days: int = 8) -> Table:
    table = Table(title="transitions per simulated day", title_justify="left", expand=True)
    table.add_column("day", justify="right")
    for column in TRANSITION_COLUMNS:
        table.add_column(f"→{column}" if column in STAGES else column, justify="right")
    for day in sorted(stats.transitions_by_day)[-last_days:]:
        counts = stats.transitions_by_day[day]
        table.add_row(str(day), *(str(counts.get(column, 0)) for column in TRANSITION_COLUMNS))
    return table


def actions_table(stats: LiveStats) -> Table:
    table = Table(title="actions by channel", title_justify="left", expand=True)
    table.add_column("channel")
    for result in RESULTS:
        table.add_column(result, justify="right")
    for channel in sorted(stats.actions):
        counts = stats.actions[channel]
        table.add_row(channel, *(str(counts.get(result, 0)) for result in RESULTS))
    return table


def recall_table(
    rows: Sequence[RecallRow], *, limit: int = 6, headline: RecallRow | None = None
) -> Table:
    table = Table(title="recall: treated vs holdout (14 d)", title_justify="left", expand=True)
    for column in ("rule", "channel", "treated", "rate", "held out", "rate ", "lift"):
        table.add_column(column, justify="left" if column in ("rule", "channel") else "right")
    ranked = sorted(rows, key=lambda row: row.treated + row.held_out, reverse=True)[:limit]
    totals = [recall_total(list(rows))] + ([headline] if headline is not None else [])
    for row in [*ranked, *totals]:
        table.add_row(
            row.rule,
            row.channel,
            str(row.treated),
            _rate(row.treated_rate),
            str(row.held_out),
            _rate(row.held_out_rate),
            _lift(row),
        )
    return table


def _lag(days: float | None) -> str:
    return "n/a" if days is None else f"{days:.1f} d"


def _headline(stats: LiveStats) -> RecallRow | None:
    return stats.recall_headline() if stats.recall_rules else None


def _waited_for(stats: LiveStats) -> str:
    by_service = stats.held_seconds_by_service
    if not by_service:
        return ""
    return ": " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in by_service.items())


def header(stats: LiveStats, *, note: str | None = None) -> Panel:
    done = "finished" if stats.finished else "running"
    lines = [
        f"simulated day {stats.sim_day:5.1f} / {stats.days}  ({done})",
        f"calls sent {stats.calls_sent}  rejected {stats.calls_rejected}  "
        f"answers to messages {stats.answers_planned}",
        f"behind: stage engine {_lag(stats.engine_lag_days())}, "
        f"notifier {_lag(stats.notifier_lag_days())}",
        f"waited for the pipeline {stats.held_seconds:.0f} s" + _waited_for(stats),
    ]
    if stats.finished:
        lines.append(
            f"wall time: {stats.days} days in {stats.days_seconds:.0f} s, "
            f"settled {stats.drain_seconds:.0f} s later"
        )
    if note:
        lines.append(note)
    return Panel("\n".join(lines), title="lifecycle simulate")


def live_view(stats: LiveStats, *, note: str | None = None) -> RenderableType:
    top = Table.grid(expand=True)
    top.add_column(ratio=1)
    top.add_column(ratio=1)
    top.add_row(stages_table(stats), actions_table(stats))
    return Group(
        header(stats, note=note),
        top,
        transitions_table(stats),
        recall_table(stats.recall, headline=_headline(stats)),
    )


def final_report(stats: LiveStats) -> RenderableType:
    totals = Table(title="transitions over the whole run", title_justify="left")
    for column in TRANSITION_COLUMNS:
        totals.add_column(column, justify="right")
    counts = stats.transitions_total()
    totals.add_row(*(str(counts.get(column, 0)) for column in TRANSITION_COLUMNS))
    return Group(
        header(stats, note="final report"),
        stages_table(stats),
        totals,
        actions_table(stats),
        recall_table(stats.recall, limit=20, headline=_headline(stats)),
    )


def progress_line(stats: LiveStats) -> str:
    """One line for headless runs and logs."""
    stages = " ".join(f"{stage}={stats.stages.get(stage, 0)}" for stage in STAGES)
    sent = " ".join(
        f"{channel}={counts.get('sent', 0)}" for channel, counts in sorted(stats.actions.items())
    )
    total = stats.recall_headline()
    return (
        f"day {stats.sim_day:5.1f}/{stats.days} calls={stats.calls_sent} "
        f"rejected={stats.calls_rejected} answers={stats.answers_planned} | stages {stages} | "
        f"sent {sent or '-'} | recall treated {_rate(total.treated_rate)} "
        f"holdout {_rate(total.held_out_rate)} | lag engine {_lag(stats.engine_lag_days())} "
        f"notifier {_lag(stats.notifier_lag_days())}"
    )
