"""The stage engine's settings: environment variables, read once in the entry point."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.settings import CommonSettings


class StageEngineSettings(CommonSettings):
    """Every field has a default that works locally (`make run`)."""

    stage_engine_group: str = "lifecycle-stage-engine"
    # wall: timers fire against the wall clock (live). event: against each partition's
    # watermark, the highest event time seen minus the allowed lateness (replay, backfill).
    stage_clock: Literal["wall", "event"] = "wall"
    stage_allowed_lateness_seconds: float = Field(default=60.0, ge=0, le=30 * 86_400)
    # Event clock only: a caught-up partition with no newer event for this many wall
    # seconds follows the highest event time among the owned partitions, so timers do
    # not wait forever after an import ends. 0 = off (exact per-partition replay).
    stage_idle_partition_seconds: float = Field(default=0.0, ge=0, le=86_400)
    # A messageId seen again within this window (by receive time) is dropped.
    stage_dedup_window_days: float = Field(default=7.0, gt=0, le=365)
    # This many poison messages in a row: something upstream is broken. The poll loop
    # waits with a backoff and reads them again, never moving past them.
    stage_max_consecutive_poison: int = Field(default=1000, ge=1)

    # One polled batch is one database transaction; this bounds it (and the memory).
    stage_batch_max_records: int = Field(default=2000, ge=1, le=50_000)
    stage_poll_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    # A killed engine's partitions move to the others after this long without heartbeats.
    stage_session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    # Consumption holds back while more transitions than this wait in the outbox.
    stage_outbox_max_backlog: int = Field(default=200_000, ge=1)
    # Timers hold back while more than this wait (backpressure.py). Small: the relay
    # publishes a partition's rows in order, so an event's transition queues behind the
    # timers' (at 2,000 events/s while 600,000 timers fell due, events took 14 s at the
    # p50 with timers held at 200,000 rows, 5.5 s at 100,000, 1.9-2.5 s at 20,000).
    stage_timer_max_backlog: int = Field(default=20_000, ge=1)

    stage_timer_interval_ms: int = Field(default=1000, ge=10, le=600_000)
    stage_timer_batch_size: int = Field(default=2000, ge=1, le=50_000)
    # Partitions fired at once, each in its own transaction (bounds memory: x batch size).
    # More rounds in flight: one round's Python work overlaps more of the others'
    # database work. bench-stage's 1M timers, pairs of runs, thousand fired/s:
    # 4 against 3: 16.6/15.1, 17.0/16.3, 16.4/14.8; 6 against 4: 20.5/20.1,
    # 21.9/20.3, 22.4/21.0 (and five earlier pairs, before the rules got cheaper, all
    # in 6's favour).
    stage_timer_parallel_rounds: int = Field(default=6, ge=1, le=64)

    stage_relay_batch_size: int = Field(default=2000, ge=1, le=50_000)
    stage_relay_interval_ms: int = Field(default=200, ge=1, le=60_000)
    # On taking over partitions, the transitions topic is read back from this long before
    # the oldest waiting outbox row, so rows a killed relay already published are not re-sent.
    stage_relay_recovery_margin_seconds: float = Field(default=60.0, ge=0, le=86_400)

    # Gauges read from the database (users per stage, backlogs), refreshed this often.
    stage_stats_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    # RFM quantile edges are recomputed from the population this often (0 = never).
    stage_rfm_refresh_seconds: float = Field(default=3600.0, ge=0)

    stage_db_pool_size: int = Field(default=10, ge=2, le=200)
    # A loop restarted after an infrastructure fault (supervisor.py) counts as recovered,
    # for readiness and for its backoff, once it has run this long without a fault.
    stage_loop_healthy_after_seconds: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _lateness_fits_dedup(self) -> StageEngineSettings:
        # The dedup window must outlive the lateness, or a late duplicate is applied twice.
        if self.stage_allowed_lateness_seconds > self.stage_dedup_window_days * 86_400:
            raise ValueError(
                f"STAGE_ALLOWED_LATENESS_SECONDS={self.stage_allowed_lateness_seconds} "
                f"exceeds STAGE_DEDUP_WINDOW_DAYS={self.stage_dedup_window_days} days"
            )
        return self
