"""Ingest's settings: the common ones plus limits, keys and timeouts (env vars, INGEST_*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AwareDatetime, Field, model_validator

from ingest import bounds
from shared.settings import CommonSettings


class IngestSettings(CommonSettings):
    """Built once in `python -m ingest` (shared.settings.load_settings), then passed down."""

    # "key1:source1,key2:source2"; a key without ":source" gets the source "default".
    ingest_write_keys: str = ""
    # One "key:source" per line; blank lines and lines starting with "#" are skipped.
    ingest_write_keys_file: Path | None = None

    # Segment's own limits: 32 KB per call, 500 KB per batch request.
    ingest_max_event_bytes: int = Field(default=32 * 1024, ge=256, le=1024 * 1024)
    ingest_max_body_bytes: int = Field(default=500 * 1024, ge=1024, le=64 * 1024 * 1024)

    # Token bucket per write key, in requests (a batch is one request).
    ingest_rate_limit_per_s: float = Field(default=2000.0, gt=0)
    ingest_rate_burst: int = Field(default=4000, ge=1)

    # How long a request waits for Kafka to acknowledge all of its events before 503.
    ingest_produce_timeout_ms: int = Field(default=5000, ge=1, le=120_000)
    # How long the producer holds a record to share a produce request with others.
    # aiokafka keeps one produce request in flight per broker, so under load records
    # batch up while the previous request is out anyway; a long linger would only add
    # its whole length to every single call at low load (5 ms gave p50 8.8 ms against
    # 4.2 ms with 1 ms at 2,000 /v1/track calls/s in the linger runs of bench-ingest).
    ingest_linger_ms: int = Field(default=1, ge=0, le=1000)
    # Events handed to the producer and not yet settled (acked or failed); above it, 503 at once.
    ingest_max_in_flight_events: int = Field(default=50_000, ge=1)
    # What 503 answers tell clients in Retry-After.
    ingest_retry_after_s: int = Field(default=1, ge=1, le=3600)
    # Start-up: how long the first broker connection may take before the service
    # starts anyway (not ready, answering 503) and keeps reconnecting in the background.
    ingest_kafka_connect_timeout_ms: int = Field(default=10_000, ge=100)
    ingest_kafka_reconnect_max_backoff_ms: int = Field(default=5_000, ge=50)

    # Bounds of what the stores and the engine can take (ingest/bounds.py), else 400.
    ingest_earliest_event_time: AwareDatetime = bounds.EARLIEST_EVENT_TIME
    ingest_max_future_seconds: int = Field(
        default=int(bounds.MAX_FUTURE.total_seconds()), ge=0, le=365 * 86_400
    )
    ingest_max_amount: float = Field(default=bounds.MAX_AMOUNT, gt=0, le=1e300)
    # Comma-separated property names the engine reads as amounts (its lifecycle config's
    # purchase_value_properties must be among them).
    ingest_amount_properties: str = ",".join(bounds.AMOUNT_PROPERTIES)

    @property
    def bounds(self) -> bounds.Bounds:
        return bounds.Bounds(
            earliest_event_time=self.ingest_earliest_event_time,
            max_future=timedelta(seconds=self.ingest_max_future_seconds),
            max_amount=self.ingest_max_amount,
            amount_properties=tuple(
                name.strip() for name in self.ingest_amount_properties.split(",") if name.strip()
            ),
        )

    @model_validator(mode="after")
    def _body_holds_an_event(self) -> IngestSettings:
        if self.ingest_max_body_bytes < self.ingest_max_event_bytes:
            raise ValueError(
                f"INGEST_MAX_BODY_BYTES={self.ingest_max_body_bytes} is smaller than "
                f"INGEST_MAX_EVENT_BYTES={self.ingest_max_event_bytes}"
            )
        return self

    @property
    def produce_timeout_s(self) -> float:
        return self.ingest_produce_timeout_ms / 1000
