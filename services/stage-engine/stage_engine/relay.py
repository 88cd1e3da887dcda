"""Outbox -> TOPIC_TRANSITIONS, with the idempotent producer, key = user id.

Each instance relays the partitions it owns. A round takes the rows past each
partition's cursor in seq order (commit order), publishes them, and moves the cursors
once Kafka acknowledged every one, so one user's transitions reach their Kafka
partition in the order they were committed. After an assignment, rows a previous
owner (or this process before a kill -9) may already have published are looked up in
the topic first (recovery.py) and skipped, not re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from shared.kafka.partitioning import partition_for
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.recovery import OutboxRecovery
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database
from stage_engine.store.transitions import Cursor, PendingTransition

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
        metrics: EngineMetrics,
        topic: str,
        batch_size: int,
        interval_s: float,
    ) -> None:
        self._db = db
        self._producer = producer
        self._ownership = ownership
        self._recovery = recovery
        self._metrics = metrics
        self._topic = topic
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._recovered_generation = -1
        # Ids past the cursors that recovery found in the topic: skipped, not re-sent.
        self._already_published: set[str] = set()

    def wake(self) -> None:
        """Transitions were committed: relay them now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        backoff_s = self._interval_s
        while True:
            try:
                more = await self.relay_once()
                backoff_s = self._interval_s
            except KafkaError as exc:
                # Transient (broker away, timeout): some of the round may be in the topic.
                # Recovery runs before the next round, so nothing is sent twice.
                log.warning("relay round failed; retrying", extra={"error": str(exc)})
                self._recovered_generation = -1
                await asyncio.sleep(backoff_s)  # backoff between retries, not synchronisation
                backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
                continue
            if not more:
                # the interval catches rows committed by other engines
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
                self._wake.clear()

    async def relay_once(self) -> bool:
        """Publish one round of outbox rows; whether a partition may have more waiting."""
        async with self._ownership.relay_lock:
            partitions = self._ownership.partitions
            if not partitions:
                return False
            generation = self._ownership.generation
            if self._recovered_generation != generation:
                # Killed right after: the cursor rows exist at 0 or where they were, which
                # is all the next start needs; it makes them again, idempotently.
                async with self._db.write() as conn:
                    await transition_store.ensure_cursors(conn, self._db, partitions)
                self._already_published = await self._recovery.run(partitions)
                self._metrics.recovered.inc(len(self._already_published))
                self._recovered_generation = generation
            if self._db.is_sqlite:
                more, sent = await self._relay_apart(partitions)
            else:
                more, sent = await self._relay_together(partitions)
        if sent:
            self._metrics.published.inc(sent)
        return more

    async def _relay_together(self, partitions: Collection[int]) -> tuple[bool, int]:
        """PostgreSQL: read the round's rows with the cursors locked, publish them, move
        the cursors, and commit once Kafka acknowledged them. Whether more rows wait,
        and how many rows were sent."""
        async with self._db.write() as conn:
            cursors = await transition_store.lock_cursors(conn, self._db, partitions)
            takes, more = self._round(cursors)
            rows = await transition_store.pending_transitions(conn, takes)
            # Killed here: nothing was sent, the cursors stay.
            sent = 0
            if rows:
                sent = await self._publish(rows)
                await transition_store.mark_published(conn, _last_seqs(rows))
            # Killed here (or Kafka failed): the cursors stay. Rows already in the topic
            # are found there by the next owner's recovery and skipped.
        # Killed right after the commit: published, and the cursors are past them.
        return more, sent

    async def _relay_apart(self, partitions: Collection[int]) -> tuple[bool, int]:
        """SQLite: read, publish, then move the cursors; a write transaction held across
        the publication would hold the database's one write lock that long."""
        async with self._db.read() as conn:
            cursors = await transition_store.lock_cursors(conn, self._db, partitions)
            takes, more = self._round(cursors)
            rows = await transition_store.pending_transitions(conn, takes)
        if not rows:
            return more, 0
        sent = await self._publish(rows)
        # Killed right here: published, the cursors not moved; the next owner's recovery
        # finds these ids in the topic and skips them instead of re-sending.
        async with self._db.write() as conn:
            await transition_store.mark_published(conn, _last_seqs(rows))
        # Killed right after: published and past the cursors, nothing left to do.
        return more, sent

    def _round(self, cursors: Mapping[int, Cursor]) -> tuple[dict[int, tuple[int, int]], bool]:
        """What a round takes from each partition (after which seq, how many), and
        whether rows are left waiting beyond it."""
        waiting = {p: cursor.waiting for p, cursor in cursors.items() if cursor.waiting > 0}
        shares = share(self._batch_size, waiting)
        takes = {p: (cursors[p].published, n) for p, n in shares.items()}
        return takes, sum(shares.values()) < sum(waiting.values())

    async def _publish(self, rows: list[PendingTransition]) -> int:
        """Send in seq order, but the rows recovery found in the topic, and wait for
        every acknowledgement.

        One user's transitions share a key, so a Kafka partition, where they are appended
        to that partition's batches in outbox order and the idempotent producer keeps the
        batches in send order. Whole batches (send_batch) cost a fraction of one send()
        per record; the partition is the one send(key=...) would pick (murmur2 of the key).
        """
        partitions = sorted(await self._producer.partitions_for(self._topic))
        open_batches: dict[int, BatchBuilder] = {}
        acks: list[asyncio.Future[Any]] = []
        skip = self._already_published
        skipped = 0
        for row in rows:
            if skip and row.transition_id in skip:
                skip.discard(row.transition_id)
                skipped += 1
                continue
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
        return len(rows) - skipped

    async def _send(self, batch: BatchBuilder, partition: int) -> asyncio.Future[Any]:
        # Closed, the batch goes out at once: an open one waits out the producer's
        # linger (5 ms) first, for records that a whole round's batch never gets.
        batch.close()
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, self._topic, partition=partition
        )
        return future


def share(batch: int, waiting: Mapping[int, int]) -> dict[int, int]:
    """Split a round of `batch` rows among partitions by what waits in each: equal
    shares, and what a partition cannot use goes to the others. A busy partition does
    not starve the rest, and one partition alone gets the whole round."""
    shares = dict.fromkeys(waiting, 0)
    left = batch
    open_ = sorted(p for p, n in waiting.items() if n > 0)
    while left > 0 and open_:
        each = max(1, left // len(open_))
        still_open = []
        for partition in open_:
            take = min(each, waiting[partition] - shares[partition], left)
            shares[partition] += take
            left -= take
            if shares[partition] < waiting[partition]:
                still_open.append(partition)
        open_ = still_open
    return {p: n for p, n in shares.items() if n > 0}


def _last_seqs(rows: list[PendingTransition]) -> dict[int, int]:
    """The highest seq of each partition in a round (rows come in seq order per partition)."""
    return {row.partition: row.seq for row in rows}
