"""Ingest's metrics, declared in one place on a registry of the app's own."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S


class RejectReason(StrEnum):
    """Why events were not accepted (the `reason` label of ingest_events_rejected_total)."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    BROKER_UNAVAILABLE = "broker_unavailable"
    PRODUCE_TIMEOUT = "produce_timeout"


# The code of a refusal (the JSON `code`) -> the reason its events count under.
REASON_OF_CODE: dict[str, RejectReason] = {
    "invalid_request": RejectReason.INVALID,
    "too_large": RejectReason.TOO_LARGE,
    "unauthorized": RejectReason.UNAUTHORIZED,
    "rate_limited": RejectReason.RATE_LIMITED,
    "overloaded": RejectReason.OVERLOADED,
    "broker_unavailable": RejectReason.BROKER_UNAVAILABLE,
    "produce_timeout": RejectReason.PRODUCE_TIMEOUT,
}


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ingest_requests_total",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=registry,
        )
        self.events_accepted = Counter(
            "ingest_events_accepted_total",
            "events acknowledged by Kafka, by call type",
            ["type"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "ingest_events_rejected_total",
            "events (or requests, when their events were never counted) refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "ingest_request_seconds",
            "time from the request's arrival to its answer",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "ingest_produce_seconds",
            "time from handing a request's events to the producer until all were acknowledged",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.batch_events = Histogram(
            "ingest_batch_events",
            "calls per /v1/batch request",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.in_flight_events = Gauge(
            "ingest_in_flight_events",
            "events handed to the producer and not yet acknowledged or failed",
            registry=registry,
        )
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._accepted_children: dict[str, Counter] = {}
        self.broker_connected = Gauge(
            "ingest_broker_connected",
            "1 when the producer is started and can take events",
            registry=registry,
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:  # labels() takes a lock and builds a key: once per pair
            children = self._request_children[(route, status)] = (
                self.requests.labels(route, str(status)),
                self.request_seconds.labels(route),
            )
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def count_accepted(self, call_type: str, events: int = 1) -> None:
        child = self._accepted_children.get(call_type)
        if child is None:
            child = self._accepted_children[call_type] = self.events_accepted.labels(call_type)
        child.inc(events)
