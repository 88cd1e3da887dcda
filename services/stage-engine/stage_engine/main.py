"""Wiring: settings in, a started engine out. The one place clients are built."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from shared.clock import Clock, SystemClock
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerTuning, make_consumer
from shared.kafka.dead_letter import send_dead_letters
from shared.kafka.producer import make_producer
from shared.supervisor import RestartPolicy
from shared.topics import dead_letter_topic
from stage_engine.backpressure import OutboxPressure
from stage_engine.consume import BatchApplier
from stage_engine.housekeeping import Housekeeping
from stage_engine.lifecycle import LifecycleConfig, load_lifecycle_config
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.poll_loop import PollLoop
from stage_engine.priority import EventsFirst
from stage_engine.rebalance import SeekToStoredOffsets
from stage_engine.recovery import OutboxRecovery
from stage_engine.relay import Relay
from stage_engine.rfm_refresh import LiveConfig, RfmRefresh
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings
from stage_engine.store.database import Database
from stage_engine.store.migrate import migrate
from stage_engine.timers import TimerLoop, TimerTime

SERVICE = "stage-engine"


def open_database(settings: StageEngineSettings, *, migrating: bool = False) -> Database:
    timeouts = settings.db_timeouts
    if migrating:
        timeouts = timeouts.without_statement_limit()
    return Database(
        make_engine(settings.database_url, pool_size=settings.stage_db_pool_size, timeouts=timeouts)
    )


async def migrate_database(settings: StageEngineSettings) -> None:
    """The pre-start step: `alembic upgrade head` on the configured database."""
    db = open_database(settings, migrating=True)
    try:
        await migrate(db.engine)
    finally:
        await db.dispose()


async def start_engine(
    settings: StageEngineSettings,
    *,
    clock: Clock | None = None,
    lifecycle_config: LifecycleConfig | None = None,
    registry: CollectorRegistry | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> Engine:
    """Build every part from `settings`, start the Kafka clients and the loops.

    Must run inside the event loop that will serve (aiokafka binds to it).
    """
    clock = clock or SystemClock()
    config = lifecycle_config or load_lifecycle_config(settings.lifecycle_config)
    topic = settings.topic_events
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [topic, dead_letter_topic(topic), settings.topic_transitions],
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    db = open_database(settings)
    metrics = EngineMetrics(registry)
    ownership = Ownership()
    live = LiveConfig(config)
    timer_time = TimerTime(
        mode=settings.stage_clock,
        clock=clock,
        ownership=ownership,
        lateness=timedelta(seconds=settings.stage_allowed_lateness_seconds),
        idle_after_s=settings.stage_idle_partition_seconds,
    )
    producer = make_producer(settings.kafka_bootstrap_servers, client_id=SERVICE)
    consumer = make_consumer(
        settings.kafka_bootstrap_servers,
        group_id=settings.stage_engine_group,
        client_id=SERVICE,
        tuning=ConsumerTuning(
            max_poll_records=settings.stage_batch_max_records,
            session_timeout_ms=settings.stage_session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.stage_session_timeout_ms // 3),
        ),
    )
    pressure = OutboxPressure(
        db=db,
        ownership=ownership,
        metrics=metrics,
        max_backlog=settings.stage_outbox_max_backlog,
        timer_max_backlog=settings.stage_timer_max_backlog,
    )
    relay = Relay(
        db=db,
        producer=producer,
        ownership=ownership,
        recovery=OutboxRecovery(
            db=db,
            producer=producer,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic_transitions,
            margin=timedelta(seconds=settings.stage_relay_recovery_margin_seconds),
        ),
        metrics=metrics,
        topic=settings.topic_transitions,
        batch_size=settings.stage_relay_batch_size,
        interval_s=settings.stage_relay_interval_ms / 1000,
    )
    events_first = EventsFirst()
    timers = TimerLoop(
        db=db,
        ownership=ownership,
        time=timer_time,
        clock=clock,
        metrics=metrics,
        config=live,
        batch_size=settings.stage_timer_batch_size,
        parallel=settings.stage_timer_parallel_rounds,
        pressure=pressure,
        interval_s=settings.stage_timer_interval_ms / 1000,
        on_fired=relay.wake,
        events_first=events_first,
    )
    event_clock = settings.stage_clock == "event"

    def committed() -> None:
        relay.wake()
        if event_clock:
            timers.wake()  # a batch moved the watermark

    poll_loop = PollLoop(
        consumer=consumer,
        producer=producer,
        applier=BatchApplier(
            db=db,
            topic=topic,
            metrics=metrics,
            clock=clock,
            dead_letter=lambda letters: send_dead_letters(producer, letters),
        ),
        db=db,
        ownership=ownership,
        metrics=metrics,
        topic=topic,
        config=live,
        max_records=settings.stage_batch_max_records,
        poll_timeout_ms=settings.stage_poll_timeout_ms,
        max_consecutive_poison=settings.stage_max_consecutive_poison,
        lateness=timedelta(seconds=settings.stage_allowed_lateness_seconds),
        pressure=pressure,
        on_committed=committed,
        events_first=events_first,
    )
    rfm = None
    if settings.stage_rfm_refresh_seconds > 0:

        def rfm_now() -> datetime | None:
            if not event_clock:
                return clock.now()
            marks = [timer_time.now_for(p) for p in ownership.partitions]
            return max((m for m in marks if m is not None), default=None)

        rfm = RfmRefresh(
            db=db,
            live=live,
            now=rfm_now,
            interval=timedelta(seconds=settings.stage_rfm_refresh_seconds),
        )
    engine = Engine(
        db=db,
        consumer=consumer,
        producer=producer,
        ownership=ownership,
        metrics=metrics,
        live_config=live,
        poll_loop=poll_loop,
        timers=timers,
        relay=relay,
        housekeeping=Housekeeping(
            db=db,
            ownership=ownership,
            time=timer_time,
            metrics=metrics,
            dedup_window=timedelta(days=settings.stage_dedup_window_days),
            interval_s=settings.stage_stats_interval_seconds,
        ),
        pressure=pressure,
        rfm=rfm,
        assignments=SeekToStoredOffsets(
            consumer=consumer,
            db=db,
            topic=topic,
            ownership=ownership,
            metrics=metrics,
            callback_timeout_s=settings.stage_session_timeout_ms / 2000,
        ),
        restart_policy=RestartPolicy(healthy_after_s=settings.stage_loop_healthy_after_seconds),
        on_failure=on_failure,
    )
    await producer.start()
    consumer.subscribe([topic], listener=engine.assignments)
    await consumer.start()
    engine.start_loops()
    return engine
