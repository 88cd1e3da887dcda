"""The notifier's moving parts, built from settings and run side by side.

consumer (transitions -> ledger)  |  executor (ledger -> providers)  |  relay (outbox -> Kafka)

Each loop is a task; if one dies unexpectedly the service stops (to be
restarted by its supervisor) rather than limping on half-built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.backoff import Backoff
from notifier.channels.base import Channel
from notifier.clocks import make_clock
from notifier.consume import TransitionConsumer
from notifier.execute import Executor, ExecutorConfig
from notifier.lean_http import LeanHttpClient
from notifier.metrics import NotifierMetrics
from notifier.playbook import Playbook
from notifier.providers import build_channels, http_client
from notifier.recent import RecentTransitions
from notifier.relay import Relay
from notifier.send import Sender
from notifier.settings import NotifierSettings
from notifier.store import tables as t
from shared.clock import Clock
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerTuning, make_consumer
from shared.kafka.ping import broker_answers
from shared.kafka.producer import make_producer
from shared.shutdown import stop_within
from shared.supervisor import RestartPolicy, Supervisor
from shared.topics import Topics, dead_letter_topic

log = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 10.0


@dataclass(slots=True)
class _Running:
    engine: AsyncEngine
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    client: LeanHttpClient
    channels: dict[str, Channel]
    tasks: list[asyncio.Task[None]]


class NotifierService:
    def __init__(
        self,
        settings: NotifierSettings,
        playbook: Playbook,
        *,
        clock: Clock | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.playbook = playbook
        self.topics = Topics.from_settings(settings)
        self.metrics = NotifierMetrics.create()
        self.engine = make_engine(settings.database_url, pool_size=8, timeouts=settings.db_timeouts)
        self._clock_override = clock
        self._on_fatal = on_fatal
        self._running: _Running | None = None
        self.clock: Clock | None = clock
        self.fatal: BaseException | None = None
        # Infrastructure faults restart a loop after a backoff; anything else is fatal.
        self._supervisor = Supervisor(
            service="notifier",
            restarts=self.metrics.loop_restarts,
            policy=RestartPolicy(),
            on_failure=self._failed,
        )

    async def start(self) -> None:
        s = self.settings
        clock = self._clock_override or make_clock(
            s.notifier_clock, newest_seen=await self._newest_transition_at()
        )
        self.clock = clock
        await ensure_topics(
            s.kafka_bootstrap_servers,
            [
                self.topics.transitions,
                self.topics.notifications,
                dead_letter_topic(self.topics.transitions),
                dead_letter_topic(self.topics.notifications),
            ],
            partitions=s.topic_partitions,
            replication_factor=s.topic_replication_factor,
            min_insync_replicas=s.topic_min_insync_replicas,
        )
        producer = make_producer(s.kafka_bootstrap_servers, client_id="lifecycle-notifier")
        await producer.start()
        consumer = make_consumer(
            s.kafka_bootstrap_servers,
            group_id=s.notifier_group,
            client_id="lifecycle-notifier",
            tuning=ConsumerTuning(
                max_poll_records=1000,
                session_timeout_ms=s.notifier_session_timeout_ms,
                heartbeat_interval_ms=max(500, s.notifier_session_timeout_ms // 3),
            ),
        )
        consumer.subscribe([self.topics.transitions])
        await consumer.start()
        client = http_client(s)
        channels = build_channels(s, self.playbook, clock=clock, client=client)
        poll_s = s.notifier_poll_interval_ms / 1000
        # Sized for a few claims' worth of backlog beyond a full consumer batch.
        recent = RecentTransitions(max_entries=max(10_000, 40 * s.notifier_concurrency))
        relay = Relay(
            engine=self.engine,
            producer=producer,
            topics=self.topics,
            metrics=self.metrics,
            poll_interval_s=poll_s,
        )
        executor = Executor(
            engine=self.engine,
            sender=Sender(
                channels=channels,
                clock=clock,
                backoff=Backoff(s.notifier_retry_base_ms, s.notifier_retry_max_ms),
                max_attempts=s.notifier_max_attempts,
                metrics=self.metrics,
                recent=recent,
            ),
            clock=clock,
            config=ExecutorConfig(
                concurrency=s.notifier_concurrency,
                lease=timedelta(milliseconds=s.notifier_lease_ms),
                poll_interval_s=poll_s,
            ),
            metrics=self.metrics,
            on_recorded=relay.wake,
        )

        def planned() -> None:
            executor.wake()
            relay.wake()

        transitions = TransitionConsumer(
            consumer=consumer,
            producer=producer,
            engine=self.engine,
            playbook=self.playbook,
            clock=clock,
            metrics=self.metrics,
            on_planned=planned,
            recent=recent,
        )
        self._supervisor.start(
            {"consumer": transitions.run, "executor": executor.run, "relay": relay.run}
        )
        tasks = self._supervisor.tasks
        self._running = _Running(
            engine=self.engine,
            producer=producer,
            consumer=consumer,
            client=client,
            channels=channels,
            tasks=tasks,
        )
        log.info(
            "notifier started",
            extra={
                "concurrency": s.notifier_concurrency,
                "clock": s.notifier_clock,
                "rules": len(self.playbook.rules),
            },
        )

    async def stop(self) -> None:
        """Stop the loops. Anything leased and unfinished is re-claimed after its lease."""
        running, self._running = self._running, None
        if running is not None:
            for task in running.tasks:
                task.cancel()
            _, stuck = await asyncio.wait(running.tasks, timeout=_STOP_TIMEOUT_S)
            if stuck:
                # Leased work is re-claimed after its lease; do not hang the shutdown.
                pending = [t for t in asyncio.all_tasks() if t.get_name().startswith("notifier-")]
                log.error(
                    "loops did not stop in time",
                    extra={"stuck": {t.get_name(): repr(t.get_stack(limit=4)) for t in pending}},
                )
            await stop_within("transitions consumer", running.consumer.stop)
            await stop_within("outcomes producer", running.producer.stop)
            for name, channel in running.channels.items():
                await stop_within(f"{name} channel", channel.aclose)
            await stop_within("HTTP client", running.client.aclose)
        await stop_within("database pool", self.engine.dispose)

    def _failed(self, error: BaseException) -> None:
        self.fatal = error
        if self._on_fatal is not None:
            self._on_fatal(error)

    async def _newest_transition_at(self) -> datetime | None:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(func.max(t.actions.c.transition_at)))
            newest: datetime | None = result.scalar_one()
        return newest

    # Readiness: each named check must answer.
    async def database_answers(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("select 1"))
        except SQLAlchemyError:
            return False
        return True

    async def kafka_answers(self) -> bool:
        return await broker_answers(self.settings.kafka_bootstrap_servers, timeout_s=2.0)

    async def loops_running(self) -> bool:
        """Started, nothing fatal, and no loop backing off after a fault."""
        return (
            self._running is not None and self.fatal is None and not self._supervisor.recovering()
        )
