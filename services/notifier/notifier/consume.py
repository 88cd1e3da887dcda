"""Transitions topic -> ledger. One batch = one database transaction, then offsets.

Commit order for each batch:
  1. decode; poison records go to `<topic>.dlq` and Kafka acknowledges them;
  2. plan the batch and write actions, decisions, outcomes in ONE transaction;
  3. commit the batch's offsets to Kafka;
  4. wake the executor and the relay.
Killed between 2 and 3, the batch is read again and plans nothing new (ledger key).

A batch whose plan fails for a reason of its own transitions (an id longer than the
ledger holds, a NUL byte PostgreSQL refuses, a value the playbook cannot take), not the
infrastructure's (shared/faults.py), is planned again in halves, each in its own
transaction, down to the single transitions that still fail: those go to the DLQ with
their error, the others are planned once. Killed part-way, the batch is read again:
the halves already committed plan nothing new (ledger key), the rest are planned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.ledger import Received, plan_batch
from notifier.metrics import NotifierMetrics
from notifier.playbook import Playbook
from notifier.recent import RecentTransitions
from notifier.store.held import HeldConnection
from shared.clock import Clock
from shared.codec import decode
from shared.errors import DecodeError
from shared.faults import fault_text
from shared.isolate import apply_isolating
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
        await self._rewind()
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
                received.append(
                    Received(
                        transition,
                        bytes(record.value or b""),
                        record.topic,
                        record.partition,
                        record.offset,
                    )
                )
        if letters:
            # Killed after: the poison records are read and dead-lettered again (same offsets).
            await send_dead_letters(self._producer, letters)
            self._metrics.transitions_dead_lettered.inc(len(letters))
            log.warning(
                "dead-lettered undecodable transitions",
                extra={"count": len(letters), "first_error": letters[0].error},
            )
        if received:
            planned = await self._plan_isolating(received)
            # Killed here: the plan is committed, the offsets are not; the batch comes
            # back and the ledger key makes it plan nothing new.
            for item in planned:
                self._recent.put(item.transition)  # the senders need not parse it again
        await self._commit(batch)
        self._metrics.transitions_consumed.inc(len(received))
        self._metrics.plan_batch_size.observe(len(received) + len(letters))
        self._metrics.plan_batch_seconds.observe(time.perf_counter() - started)
        self._on_planned()

    async def _rewind(self) -> None:
        """Seek each assigned partition back to its committed offset: a loop restarted
        after a fault (shared/supervisor.py) reads again the batch it had polled but not
        planned. Nothing assigned yet on the first start: the group's offsets apply."""
        for tp in self._consumer.assignment():
            offset = await self._consumer.committed(tp)
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)

    async def _plan_isolating(self, received: list[Received]) -> list[Received]:
        """Plan `received`; what could not be planned is dead-lettered. The planned ones."""
        refused = await apply_isolating(received, self._plan)
        refused_ids = {id(item) for item, _ in refused}
        planned = [item for item in received if id(item) not in refused_ids]
        if refused:
            letters = [_refused_letter(item, exc) for item, exc in refused]
            # Before the offsets: killed after this, the batch is read again and the
            # same transitions are dead-lettered again (same source offset).
            await send_dead_letters(self._producer, letters)
            self._metrics.transitions_refused.inc(len(letters))
            for letter in letters:
                log.error(
                    "transition dead-lettered",
                    extra={"offset": letter.offset, "error": letter.error},
                )
        return planned

    async def _plan(self, part: Sequence[Received]) -> None:
        async with self._connection.begin() as conn:
            summary = await plan_batch(
                conn,
                part,
                playbook=self._playbook,
                clock=self._clock,
                wall_now=datetime.now(UTC),
            )
        for (channel, result), count in summary.actions.items():
            self._metrics.actions.labels(channel, result).inc(count)

    async def _commit(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        # Only partitions still assigned: aiokafka refuses a commit naming one a rebalance
        # took away meanwhile (IllegalStateError), and its new owner re-reads it anyway.
        assigned = self._consumer.assignment()
        offsets = {
            tp: records[-1].offset + 1
            for tp, records in batch.items()
            if records and tp in assigned
        }
        if not offsets:
            return
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


def _refused_letter(item: Received, exc: BaseException) -> DeadLetter:
    who = "refused by the ledger" if isinstance(exc, DBAPIError) else "could not be planned"
    error = f"{who}: {fault_text(exc)}"
    key = item.transition.subject.encode(errors="replace")
    return DeadLetter(
        topic=item.topic,
        partition=item.partition,
        offset=item.offset,
        key=key,
        value=item.payload,
        error=error,
    )
