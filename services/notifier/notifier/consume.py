"""Transitions topic -> ledger. One batch = one database transaction, then offsets.

Commit order for each batch:
  1. decode; poison records go to `<topic>.dlq` and Kafka acknowledges them;
  2. plan the batch and write actions, decisions, outcomes in ONE transaction;
  3. commit the batch's offsets to Kafka;
  4. wake the executor and the relay.
Killed between 2 and 3, the batch is read again and plans nothing new (ledger key).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.ledger import Received, plan_batch
from notifier.metrics import NotifierMetrics
from notifier.playbook import Playbook
from notifier.recent import RecentTransitions
from notifier.store.held import HeldConnection
from shared.clock import Clock
from shared.codec import decode
from shared.errors import DecodeError
from shared.kafka.dead_letter import DeadLetter, send_dead_letters
from shared.transitions import Transition

log = logging.getLogger(__name__)

# A batch is planned with the event loop's senders waiting: ~0.1 ms of CPU per
# transition, so 300 keeps each planning stall near 30 ms (1000 stalled ~100 ms).
MAX_BATCH_RECORDS = 300
POLL_TIMEOUT_MS = 500


class TransitionConsumer:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        engine: AsyncEngine,
        playbook: Playbook,
        clock: Clock,
        metrics: NotifierMetrics,
        on_planned: Callable[[], None],
        recent: RecentTransitions | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._connection = HeldConnection(engine)
        self._playbook = playbook
        self._clock = clock
        self._metrics = metrics
        self._on_planned = on_planned
        self._recent = recent or RecentTransitions(max_entries=0)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._connection.close()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH_RECORDS
            )
            if batch:
                await self.handle(batch)

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        started = time.perf_counter()
        received: list[Received] = []
        letters: list[DeadLetter] = []
        for records in batch.values():
            for record in records:
                try:
                    transition = decode(Transition, record.value)
                except DecodeError as exc:
                    letters.append(_dead_letter(record, str(exc)))
                    continue
                received.append(Received(transition, bytes(record.value or b"")))
        if letters:
            # Killed after: the poison records are read and dead-lettered again (same offsets).
            await send_dead_letters(self._producer, letters)
            self._metrics.transitions_dead_lettered.inc(len(letters))
            log.warning(
                "dead-lettered undecodable transitions",
                extra={"count": len(letters), "first_error": letters[0].error},
            )
        if received:
            async with self._connection.begin() as conn:
                summary = await plan_batch(
                    conn,
                    received,
                    playbook=self._playbook,
                    clock=self._clock,
                    wall_now=datetime.now(UTC),
                )
            # Killed here: the plan is committed, the offsets are not; the batch comes
            # back and the ledger key makes it plan nothing new.
            for item in received:
                self._recent.put(item.transition)  # the senders need not parse it again
            for (channel, result), count in summary.actions.items():
                self._metrics.actions.labels(channel, result).inc(count)
        await self._commit(batch)
        self._metrics.transitions_consumed.inc(len(received))
        self._metrics.plan_batch_size.observe(len(received) + len(letters))
        self._metrics.plan_batch_seconds.observe(time.perf_counter() - started)
        self._on_planned()

    async def _commit(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced under us: the new owner reads the batch again and the
            # ledger key makes that harmless. Not an error worth stopping for.
            log.warning("offset commit refused after a rebalance; batch will be re-read")


def _dead_letter(record: ConsumerRecord[bytes, bytes], error: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=error,
    )
