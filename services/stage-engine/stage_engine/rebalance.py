"""On assignment, seek to the offsets stored in the database (the source of truth).

aiokafka logs and drops any exception a rebalance callback raises, and carries on with
the partitions assigned: left so, their records would be fetched and dropped as "not
owned", for good, with nothing but one log line to show. So taking partitions never
raises out of the callback. A partition that could not be taken (the database or the
broker did not answer) is recorded in Ownership as not taken, paused in the consumer
(its records are not fetched), counted, logged as an error, and keeps the engine's
readiness red; the `assignments` loop (`run`, supervised like every loop) takes it
once the fault is gone, after the supervisor's backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.supervisor import fault_reason, root_cause
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.store.database import Database
from stage_engine.store.offsets import (
    OffsetReset,
    StoredOffset,
    beyond_log_end,
    create_missing_offsets,
    load_offsets,
    reset_offsets,
)

log = logging.getLogger(__name__)


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands partitions (with their timers and outbox rows) over at a batch boundary.

    aiokafka waits for these callbacks before the group proceeds, and every member
    revokes before any member is assigned: a partition's new owner reads the offset
    its old owner stored last.
    """

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        db: Database,
        topic: str,
        ownership: Ownership,
        metrics: EngineMetrics,
        callback_timeout_s: float,
    ) -> None:
        self._consumer = consumer
        self._db = db
        self._topic = topic
        self._ownership = ownership
        self._metrics = metrics
        # aiokafka sends no heartbeats while the assignment callback runs: one that
        # waited for a frozen database past the session timeout would lose the group.
        self._callback_timeout_s = callback_timeout_s
        # Bumped by every callback: a retry that straddles a rebalance takes nothing.
        self._rebalances = 0
        # Why the callback could not take its partitions, for `run` to raise.
        self._fault: BaseException | None = None
        self._retry = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._rebalances += 1
        partitions = [tp.partition for tp in revoked if tp.topic == self._topic]
        # Waits for the batch, timer round and relay round in flight to finish.
        async with self._ownership.handover():
            self._ownership.release(partitions)
        self._metrics.partitions_not_taken.set(len(self._ownership.not_taken))
        log.info("partitions revoked", extra={"partitions": sorted(partitions)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._rebalances += 1
        tps = sorted(tp for tp in assigned if tp.topic == self._topic)
        if not tps:
            return
        try:
            async with asyncio.timeout(self._callback_timeout_s):
                await self._take(tps)
        except Exception as exc:  # noqa: BLE001 - aiokafka would drop it: recorded, retried
            self._could_not_take(tps, exc)
            self._fault = exc
            self._retry.set()

    async def run(self) -> None:
        """The `assignments` loop: take the partitions an assignment could not.

        It first raises the fault that kept them from being taken, so the supervisor
        backs off before each retry (or stops the engine, when the fault is no
        infrastructure fault). A retry that fails raises its own fault the same way.
        """
        while True:
            await self._retry.wait()
            fault, self._fault = self._fault, None
            if fault is not None:
                raise fault
            tps = self._untaken()
            if not tps:
                self._retry.clear()
                continue
            self._consumer.pause(*tps)  # again: a backpressure resume may have undone it
            rebalances = self._rebalances
            try:
                await self._take(tps)
            except Exception as exc:
                if rebalances == self._rebalances:  # else the newer assignment decides
                    self._could_not_take(tps, exc)
                raise

    def _untaken(self) -> list[TopicPartition]:
        assigned = self._consumer.assignment()
        tps = (TopicPartition(self._topic, p) for p in sorted(self._ownership.not_taken))
        return [tp for tp in tps if tp in assigned]

    async def _take(self, tps: list[TopicPartition]) -> None:
        """Read (or create) the stored offsets, reset any past the log's end, seek there
        and own the partitions."""
        rebalances = self._rebalances
        paused = [tp for tp in tps if tp.partition in self._ownership.not_taken]
        beginnings = _by_partition(await self._consumer.beginning_offsets(tps))
        ends = _by_partition(await self._consumer.end_offsets(tps))
        partitions = sorted(beginnings)
        # Killed right after: the rows for new partitions exist, and offsets past the
        # log's end are at its beginning (offsets.reset_offsets); nothing else changed.
        async with self._db.write() as conn:
            await create_missing_offsets(conn, self._db, self._topic, beginnings)
            stored = await load_offsets(conn, self._topic, partitions)
            resets = beyond_log_end(stored, ends, beginnings)
            if resets:
                await reset_offsets(conn, self._topic, resets)
                stored = await load_offsets(conn, self._topic, partitions)
        self._report_resets(resets)
        async with self._ownership.handover():
            if rebalances != self._rebalances:
                return  # revoked meanwhile; the newer assignment takes what is ours now
            for tp in tps:
                self._consumer.seek(tp, stored[tp.partition].next_offset)
            self._ownership.take(stored)
        self._consumer.resume(*paused)  # by the attempt that failed
        self._metrics.partitions_not_taken.set(len(self._ownership.not_taken))
        log.info("partitions assigned", extra={"offsets": _next_offsets(stored)})

    def _could_not_take(self, tps: Collection[TopicPartition], exc: BaseException) -> None:
        partitions = sorted(tp.partition for tp in tps)
        self._ownership.could_not_take(partitions)
        self._consumer.pause(*tps)
        reason = fault_reason(exc)
        self._metrics.assignment_failures.labels(reason).inc()
        self._metrics.partitions_not_taken.set(len(self._ownership.not_taken))
        log.error(
            "assigned partitions not taken; paused until taken",
            extra={"partitions": partitions, "reason": reason, "error": str(root_cause(exc))},
        )

    def _report_resets(self, resets: Collection[OffsetReset]) -> None:
        for reset in resets:
            self._metrics.offset_resets.labels("beyond_log_end").inc()
            log.error(
                "stored offset beyond the log's end (topic recreated or broker data lost); "
                "reading the partition from its beginning",
                extra={
                    "topic": self._topic,
                    "partition": reset.partition,
                    "stored_offset": reset.stored,
                    "log_end": reset.log_end,
                    "beginning": reset.beginning,
                },
            )


def _by_partition(offsets: dict[TopicPartition, int]) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in offsets.items()}


def _next_offsets(stored: dict[int, StoredOffset]) -> dict[int, int]:
    return {p: stored[p].next_offset for p in sorted(stored)}
