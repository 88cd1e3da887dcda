"""Every metric the stage engine exports, declared once, on the engine's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, new_registry

_PREFIX = "stage_engine"


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        r = self.registry
        # rate(stage_engine_events_total[1m]) is the events/s.
        self.events = Counter(
            f"{_PREFIX}_events",
            "Events consumed, by outcome (applied, duplicate, dead_lettered, stale)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{_PREFIX}_dead_letters",
            "Events sent to the dead-letter topic, by reason (undecodable: not an Event; "
            "rejected: the rules or the database refused it)",
            ["reason"],
            registry=r,
        )
        self.quarantined = Counter(
            f"{_PREFIX}_quarantined_rows",
            "Stored user rows that could no longer be read, moved to the quarantine table",
            registry=r,
        )
        self.batch_size = Histogram(
            f"{_PREFIX}_batch_size",
            "Records per consumed batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{_PREFIX}_batch_duration_seconds",
            "Time to apply one batch (decode, transaction, commit)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{_PREFIX}_consumer_lag",
            "Records in the events topic not yet applied, per owned partition",
            ["partition"],
            registry=r,
        )
        self.transitions = Counter(
            f"{_PREFIX}_transitions",
            "Transitions emitted, by kind and target stage",
            ["kind", "to_stage"],
            registry=r,
        )
        self.timers_fired = Counter(
            f"{_PREFIX}_timers_fired", "Due user rows fired by the timer loop", registry=r
        )
        self.due_backlog = Gauge(
            f"{_PREFIX}_due_backlog",
            "User rows of owned partitions whose timer is due and not yet fired",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            f"{_PREFIX}_outbox_backlog",
            "Transitions of owned partitions waiting to be published",
            registry=r,
        )
        self.users = Gauge(
            f"{_PREFIX}_users",
            "Profiles per lifecycle stage (whole database)",
            ["stage"],
            registry=r,
        )
        self.published = Counter(
            f"{_PREFIX}_transitions_published", "Transitions acknowledged by Kafka", registry=r
        )
        self.recovered = Counter(
            f"{_PREFIX}_outbox_recovered",
            "Outbox rows found already published after a take-over, not sent again",
            registry=r,
        )
        self.fenced = Counter(
            f"{_PREFIX}_fenced_batches",
            "Batches rolled back because another engine had moved the partition's offset",
            registry=r,
        )
        self.retried = Counter(
            f"{_PREFIX}_retried_transactions",
            "Transactions run again after a deadlock or a busy database",
            registry=r,
        )
        self.paused = Gauge(
            f"{_PREFIX}_consumption_paused",
            "1 while consumption waits for the outbox to drain (backpressure)",
            registry=r,
        )
        self.timers_paused = Gauge(
            f"{_PREFIX}_timers_paused",
            "1 while the timer loop waits for the outbox to drain (backpressure)",
            registry=r,
        )
        self.loop_restarts = Counter(
            f"{_PREFIX}_loop_restarts",
            "Background loops restarted after an infrastructure fault (database or broker "
            "unreachable, a statement timed out), by loop and the fault's class",
            ["loop", "reason"],
            registry=r,
        )
        self.assignment_failures = Counter(
            f"{_PREFIX}_assignment_failures",
            "Attempts to take assigned partitions (read their stored offsets, seek) that "
            "failed, by the fault's class; the partitions stay paused until taken",
            ["reason"],
            registry=r,
        )
        self.partitions_not_taken = Gauge(
            f"{_PREFIX}_partitions_not_taken",
            "Partitions assigned to this engine that it could not take yet",
            registry=r,
        )
        self.offset_resets = Counter(
            f"{_PREFIX}_offset_resets",
            "Stored offsets moved back to the partition's beginning, by reason "
            "(beyond_log_end: the log was recreated or lost)",
            ["reason"],
            registry=r,
        )
