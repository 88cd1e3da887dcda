"""The consumer loop: poll a bounded batch, apply it in one transaction, then the next.

One batch in flight at a time (no task per message): the loop's own pace is the
backpressure toward Kafka, and while the outbox holds more than its limit
(backpressure.py) the owned partitions are paused until the relay drains it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from shared.kafka.dead_letter import send_dead_letters
from stage_engine.backpressure import OutboxPressure
from stage_engine.consume import BatchApplier, BatchOutcome
from stage_engine.decode import DecodedBatch, decode_batch
from stage_engine.lifecycle import LifecycleConfig
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.priority import EventsFirst
from stage_engine.store.database import Database
from stage_engine.store.offsets import FencedError, load_offsets

log = logging.getLogger(__name__)

# Offsets go to Kafka (for lag tools only) at most this often: a round trip per batch
# would cost latency for nothing, the database holds the truth.
KAFKA_COMMIT_INTERVAL_S = 1.0


class PollLoop:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        applier: BatchApplier,
        db: Database,
        ownership: Ownership,
        metrics: EngineMetrics,
        topic: str,
        config: Callable[[], LifecycleConfig],
        max_records: int,
        poll_timeout_ms: int,
        max_consecutive_poison: int,
        lateness: timedelta,
        pressure: OutboxPressure,
        on_committed: Callable[[], None],
        events_first: EventsFirst,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._applier = applier
        self._db = db
        self._ownership = ownership
        self._metrics = metrics
        self._topic = topic
        self._config = config
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._max_poison = max_consecutive_poison
        self._lateness = lateness
        self._pressure = pressure
        self._on_committed = on_committed
        self._events_first = events_first
        self._poison_streak = 0
        self._paused = False
        self._kafka_offsets: dict[TopicPartition, int] = {}
        self._kafka_committed_at = 0.0

    async def run(self) -> None:
        self._rewind()
        while True:
            self._backpressure()
            polled = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            if polled:
                with self._events_first.batch():
                    await self.handle(polled)
            self._update_lag()

    async def handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        records = {tp.partition: recs for tp, recs in polled.items() if tp.topic == self._topic}
        async with self._ownership.consume_lock:
            positions = {p: self._ownership.position(p) for p in records}
            batch = decode_batch(
                self._topic,
                records,
                {p: pos for p, pos in positions.items() if pos is not None},
                poison_streak=self._poison_streak,
                max_consecutive_poison=self._max_poison,
                lateness=self._lateness,
            )
            if not batch.spans:
                self._metrics.events.labels("stale").inc(batch.stale)
                return
            if batch.dead_letters:
                # Killed right after: the letters are in the DLQ but the offsets did not
                # move; the records are read and dead-lettered again (same source offset).
                await send_dead_letters(self._producer, batch.dead_letters)
            try:
                outcome = await self._applier.apply(batch, self._config())
            except FencedError as exc:
                self._metrics.fenced.inc()
                log.warning("batch fenced", extra={"error": str(exc)})
                await self._resync()
                return
            for partition, span in batch.spans.items():
                self._ownership.advanced(
                    partition, span.end, span.max_event_time, span.max_received_at
                )
            self._poison_streak = batch.poison_streak
        self._count(batch, outcome)
        self._metrics.batch_duration.observe(time.perf_counter() - started)
        self._on_committed()
        for partition, span in batch.spans.items():
            self._kafka_offsets[TopicPartition(self._topic, partition)] = span.end
        await self._commit_to_kafka()

    def _count(self, batch: DecodedBatch, outcome: BatchOutcome) -> None:
        m = self._metrics
        m.batch_size.observe(batch.records)
        m.events.labels("applied").inc(outcome.applied)
        m.events.labels("duplicate").inc(outcome.duplicates)
        m.events.labels("dead_lettered").inc(len(batch.dead_letters) + len(outcome.rejected))
        m.events.labels("stale").inc(batch.stale)
        m.dead_letters.labels("undecodable").inc(len(batch.dead_letters))
        m.dead_letters.labels("rejected").inc(len(outcome.rejected))
        m.quarantined.inc(outcome.quarantined)
        for (kind, to_stage), count in outcome.transitions.items():
            m.transitions.labels(kind, to_stage).inc(count)
        for letter in outcome.rejected:
            log.error(
                "event dead-lettered",
                extra={
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "error": letter.error,
                },
            )

    def _rewind(self) -> None:
        """Seek each owned partition back to its stored offset: a loop restarted after a
        fault (runtime.py) reads again the batch it had polled but not committed."""
        assigned = self._consumer.assignment()
        for partition in self._ownership.partitions:
            tp = TopicPartition(self._topic, partition)
            position = self._ownership.position(partition)
            if tp in assigned and position is not None:
                self._consumer.seek(tp, position)

    async def _commit_to_kafka(self) -> None:
        # The database holds the offsets; Kafka gets them only so lag tools see progress.
        # Killed before this: the group offset lags; the engine still resumes from the DB.
        now = time.monotonic()
        if now - self._kafka_committed_at < KAFKA_COMMIT_INTERVAL_S:
            return
        self._kafka_committed_at = now
        assigned = self._consumer.assignment()
        offsets = {tp: end for tp, end in self._kafka_offsets.items() if tp in assigned}
        self._kafka_offsets.clear()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress: the next batch commits again
            log.debug("kafka offset commit skipped", extra={"error": str(exc)})

    async def _resync(self) -> None:
        """After a fenced batch: take the stored offsets again and seek there."""
        partitions = sorted(self._ownership.partitions)
        async with self._db.read() as conn:
            stored = await load_offsets(conn, self._topic, partitions)
        self._ownership.take(stored)
        for partition, offset in stored.items():
            tp = TopicPartition(self._topic, partition)
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, offset.next_offset)

    def _update_lag(self) -> None:
        for partition in self._ownership.partitions:
            tp = TopicPartition(self._topic, partition)
            position = self._ownership.position(partition)
            highwater = self._consumer.highwater(tp) if tp in self._consumer.assignment() else None
            if highwater is not None and position is not None:
                lag = max(0, highwater - position)
                self._metrics.consumer_lag.labels(str(partition)).set(lag)
                self._ownership.note_lag(partition, lag)

    def _backpressure(self) -> None:
        assigned = list(self._consumer.assignment())
        if self._pressure.over:
            self._consumer.pause(*assigned)  # again: partitions assigned since are paused too
            self._paused = True
        elif self._paused:
            # Partitions whose assignment failed stay paused until they are taken
            # (rebalance.py): their records would be fetched only to be dropped.
            not_taken = self._ownership.not_taken
            self._consumer.resume(*(tp for tp in assigned if tp.partition not in not_taken))
            self._paused = False
