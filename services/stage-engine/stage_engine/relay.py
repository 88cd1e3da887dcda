"""Outbox -> TOPIC_TRANSITIONS, with the idempotent producer, key = user id.

Rows go out in outbox order (`seq`), a round at a time, and are deleted once Kafka
acknowledged every one of them, so one user's transitions reach their partition in
the order they were committed. Each instance relays the rows of the partitions it
owns. After an assignment, rows a previous owner (or this process before a kill -9)
may already have published are looked up in the topic first and dropped, not re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from shared.kafka.partitioning import partition_for
from stage_engine.backpressure import OutboxPressure
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.recovery import OutboxRecovery
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database
from stage_engine.store.transitions import PendingTransition

log = logging.getLogger(__name__)

# Structured-mode CloudEvents over Kafka (CloudEvents Kafka protocol binding).
HEADERS = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
MAX_BACKOFF_S = 5.0


class Relay:
    def __init__(
        self,
        *,
        db: Database,
        producer: AIOKafkaProducer,
        ownership: Ownership,
        recovery: OutboxRecovery,
        pressure: OutboxPressure,
        metrics: EngineMetrics,
        topic: str,
        batch_size: int,
        interval_s: float,
    ) -> None:
        self._db = db
        self._producer = producer
        self._ownership = ownership
        self._recovery = recovery
        self._pressure = pressure
        self._metrics = metrics
        self._topic = topic
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._recovered_generation = -1

    def wake(self) -> None:
        """Transitions were committed: relay them now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        backoff_s = self._interval_s
        while True:
            try:
                sent = await self.relay_once()
                backoff_s = self._interval_s
            except KafkaError as exc:
                # Transient (broker away, timeout): some of the round may be in the topic.
                # Recovery runs before the next round, so nothing is sent twice.
                log.warning("relay round failed; retrying", extra={"error": str(exc)})
                self._recovered_generation = -1
                await asyncio.sleep(backoff_s)  # backoff between retries, not synchronisation
                backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
                continue
            if sent < self._batch_size:
                # the interval catches rows committed by other engines
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
                self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one round of outbox rows; how many were published."""
        async with self._ownership.relay_lock:
            partitions = self._ownership.partitions
            if not partitions:
                return 0
            generation = self._ownership.generation
            if self._recovered_generation != generation:
                recovered = await self._recovery.run(partitions)
                self._metrics.recovered.inc(recovered)
                self._pressure.relayed(recovered)
                self._recovered_generation = generation
            if self._db.is_sqlite:
                rows = await self._relay_apart(partitions)
            else:
                rows = await self._relay_together(partitions)
        if rows:
            self._metrics.published.inc(len(rows))
            self._pressure.relayed(len(rows))
        return len(rows)

    async def _relay_together(self, partitions: Collection[int]) -> list[PendingTransition]:
        """PostgreSQL: delete the round's rows, publish them, commit once Kafka acknowledged.

        One statement and one transaction per round, where reading and deleting apart
        took two of each.
        """
        async with self._db.write() as conn:
            rows = await transition_store.take_pending(conn, partitions, self._batch_size)
            # Killed here: the deletion is not committed, the rows stay, nothing was sent.
            if rows:
                await self._publish(rows)
            # Killed here (or Kafka failed): still not committed, the rows stay. Any of them
            # already in the topic are found there by the next owner's recovery and dropped.
        # Killed right after the commit: published and gone from the outbox, nothing left.
        return rows

    async def _relay_apart(self, partitions: Collection[int]) -> list[PendingTransition]:
        """SQLite: read, publish, then delete; a write transaction held across the
        publication would hold the database's one write lock that long."""
        async with self._db.read() as conn:
            rows = await transition_store.pending_transitions(conn, partitions, self._batch_size)
        if not rows:
            return rows
        await self._publish(rows)
        # Killed right here: published but still in the outbox; the next owner's
        # recovery finds these ids in the topic and drops the rows instead of re-sending.
        async with self._db.write() as conn:
            await transition_store.drop_sent(conn, [row.seq for row in rows])
        # Killed right after: published and gone from the outbox, nothing left to do.
        return rows

    async def _publish(self, rows: list[PendingTransition]) -> None:
        """Send in outbox order and wait for every acknowledgement.

        One user's transitions share a key, so a Kafka partition, where they are appended
        to that partition's batches in outbox order and the idempotent producer keeps the
        batches in send order. Whole batches (send_batch) cost a fraction of one send()
        per record; the partition is the one send(key=...) would pick (murmur2 of the key).
        """
        partitions = sorted(await self._producer.partitions_for(self._topic))
        open_batches: dict[int, BatchBuilder] = {}
        acks: list[asyncio.Future[Any]] = []
        for row in rows:
            key = row.subject.encode()
            partition = partition_for(key, partitions)
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = self._producer.create_batch()
            if batch.append(key=key, value=row.body, timestamp=None, headers=HEADERS) is None:
                # full: send it, and start the partition's next batch with this record
                acks.append(await self._send(batch, partition))
                batch = open_batches[partition] = self._producer.create_batch()
                if batch.append(key=key, value=row.body, timestamp=None, headers=HEADERS) is None:
                    raise ValueError(f"transition {row.transition_id} is over the batch size")
        for partition, batch in open_batches.items():
            acks.append(await self._send(batch, partition))
        for ack in acks:
            await ack

    async def _send(self, batch: BatchBuilder, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, self._topic, partition=partition
        )
        return future
