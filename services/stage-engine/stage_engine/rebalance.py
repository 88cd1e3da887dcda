"""On assignment, seek to the offsets stored in the database (the source of truth)."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from stage_engine.ownership import Ownership
from stage_engine.store.database import Database
from stage_engine.store.offsets import create_missing_offsets, load_offsets

log = logging.getLogger(__name__)


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands partitions (with their timers and outbox rows) over at a batch boundary.

    aiokafka waits for these callbacks before the group proceeds, and every member
    revokes before any member is assigned: a partition's new owner reads the offset
    its old owner stored last.
    """

    def __init__(
        self, *, consumer: AIOKafkaConsumer, db: Database, topic: str, ownership: Ownership
    ) -> None:
        self._consumer = consumer
        self._db = db
        self._topic = topic
        self._ownership = ownership

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = [tp.partition for tp in revoked if tp.topic == self._topic]
        # Waits for the batch, timer round and relay round in flight to finish.
        async with self._ownership.handover():
            self._ownership.release(partitions)
        log.info("partitions revoked", extra={"partitions": sorted(partitions)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        tps = [tp for tp in assigned if tp.topic == self._topic]
        if not tps:
            return
        beginnings: dict[TopicPartition, int] = await self._consumer.beginning_offsets(tps)
        partitions = [tp.partition for tp in tps]
        # Killed right after: the rows for new partitions exist, nothing else changed.
        async with self._db.write() as conn:
            await create_missing_offsets(
                conn, self._db, self._topic, {tp.partition: beginnings[tp] for tp in tps}
            )
            stored = await load_offsets(conn, self._topic, partitions)
        async with self._ownership.handover():
            for tp in tps:
                self._consumer.seek(tp, stored[tp.partition].next_offset)
            self._ownership.take(stored)
        log.info(
            "partitions assigned",
            extra={"offsets": {p: stored[p].next_offset for p in sorted(stored)}},
        )
