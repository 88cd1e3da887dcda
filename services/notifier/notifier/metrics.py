"""The notifier's metrics: the one typed list of names."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, new_registry

# Transition-to-send spans seconds to days (quiet hours, retries).
_LONG_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass(frozen=True)
class NotifierMetrics:
    registry: CollectorRegistry
    transitions_consumed: Counter
    transitions_dead_lettered: Counter
    transitions_refused: Counter
    loop_restarts: Counter  # labels: loop, reason
    plan_batch_seconds: Histogram
    plan_batch_size: Histogram
    actions: Counter  # labels: channel, result (pending, deferred, skipped:<reason>, sent, retry…)
    send_seconds: Histogram  # labels: channel
    transition_to_send_seconds: Histogram  # labels: channel
    pending_actions: Gauge
    pending_retries: Gauge
    coupons_issued: Counter
    outbox_published: Counter
    outbox_backlog: Gauge
    actions_dead_lettered: Counter

    @classmethod
    def create(cls) -> NotifierMetrics:
        registry = new_registry()
        return cls(
            registry=registry,
            transitions_consumed=Counter(
                "notifier_transitions_consumed", "transitions read and planned", registry=registry
            ),
            transitions_dead_lettered=Counter(
                "notifier_transitions_dead_lettered",
                "transition records that could not be decoded",
                registry=registry,
            ),
            loop_restarts=Counter(
                "notifier_loop_restarts",
                "Loops restarted after an infrastructure fault, by loop and root error class",
                ["loop", "reason"],
                registry=registry,
            ),
            transitions_refused=Counter(
                "notifier_transitions_refused",
                "transitions that decoded but could not be planned into the ledger "
                "(dead-lettered with the error)",
                registry=registry,
            ),
            plan_batch_seconds=Histogram(
                "notifier_plan_batch_seconds",
                "one consumed batch: decode, plan, commit to the database and Kafka",
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            plan_batch_size=Histogram(
                "notifier_plan_batch_size",
                "transitions per consumed batch",
                buckets=BATCH_SIZE_BUCKETS,
                registry=registry,
            ),
            actions=Counter(
                "notifier_actions",
                "actions by channel and result",
                ["channel", "result"],
                registry=registry,
            ),
            send_seconds=Histogram(
                "notifier_send_seconds",
                "one provider call (or coupon issue), by channel",
                ["channel"],
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            transition_to_send_seconds=Histogram(
                "notifier_transition_to_send_seconds",
                "from the transition's time to the provider's acceptance (wall clock)",
                ["channel"],
                buckets=_LONG_LATENCY_BUCKETS_S,
                registry=registry,
            ),
            pending_actions=Gauge(
                "notifier_pending_actions", "actions waiting to be executed", registry=registry
            ),
            pending_retries=Gauge(
                "notifier_pending_retries",
                "pending actions that already failed at least once",
                registry=registry,
            ),
            coupons_issued=Counter(
                "notifier_coupons_issued", "coupons written to the ledger", registry=registry
            ),
            outbox_published=Counter(
                "notifier_outbox_published",
                "outcomes and dead letters published to Kafka",
                ["kind"],
                registry=registry,
            ),
            outbox_backlog=Gauge(
                "notifier_outbox_backlog", "records waiting to be published", registry=registry
            ),
            actions_dead_lettered=Counter(
                "notifier_actions_dead_lettered",
                "actions given up on, sent to the dead-letter topic",
                ["channel"],
                registry=registry,
            ),
        )
