"""Which rows past the outbox cursors are already in the transitions topic?

A relay killed between Kafka's acknowledgement and the commit of its cursors leaves
published rows past them. Before relaying a partition it has just taken over, an
engine reads the topic from a little before the oldest waiting row was queued (Kafka's
record timestamps are the producer's create time, always after the row's commit) to
the end, and collects the waiting rows whose transition id it finds: the relay skips
them. Streamed in chunks: bounded memory, and the set found holds at most the rows of
the rounds a relay had in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka.consumer import make_consumer
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database

log = logging.getLogger(__name__)

CHUNK_RECORDS = 2000


class OutboxRecovery:
    def __init__(
        self,
        *,
        db: Database,
        producer: AIOKafkaProducer,
        bootstrap_servers: str,
        topic: str,
        margin: timedelta,
    ) -> None:
        self._db = db
        self._producer = producer
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._margin = margin

    async def run(self, partitions: Collection[int]) -> set[str]:
        """The ids of the waiting rows of `partitions` found in the topic."""
        async with self._db.read() as conn:
            oldest = await transition_store.oldest_pending_at(conn, partitions)
        if oldest is None:
            return set()
        since_ms = int((oldest - self._margin).timestamp() * 1000)
        consumer = make_consumer(
            self._bootstrap_servers, group_id=None, client_id="stage-engine-outbox-recovery"
        )
        await consumer.start()
        found: set[str] = set()
        try:
            ends = await self._seek_to_time(consumer, since_ms)
            while ends:
                polled = await consumer.getmany(timeout_ms=500, max_records=CHUNK_RECORDS)
                ids = [_id_of(r.value) for records in polled.values() for r in records]
                found |= await self._waiting(partitions, [i for i in ids if i])
                for tp in list(ends):
                    if await consumer.position(tp) >= ends[tp]:
                        del ends[tp]
        finally:
            await consumer.stop()
        if found:
            log.info("outbox rows found already published", extra={"skipped": len(found)})
        return found

    async def _seek_to_time(
        self, consumer: AIOKafkaConsumer, since_ms: int
    ) -> dict[TopicPartition, int]:
        partitions = await self._producer.partitions_for(self._topic)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        pending: dict[TopicPartition, int] = {}
        for tp in tps:
            start = found.get(tp)
            if start is None or start.offset >= ends[tp]:
                continue  # nothing written to this partition since then
            pending[tp] = start.offset
        if not pending:
            return {}
        # Only these are read: an unassigned partition is not read from its beginning.
        consumer.assign(list(pending))
        for tp, offset in pending.items():
            consumer.seek(tp, offset)
        return {tp: ends[tp] for tp in pending}

    async def _waiting(self, partitions: Collection[int], transition_ids: list[str]) -> set[str]:
        if not transition_ids:
            return set()
        async with self._db.read() as conn:
            return await transition_store.pending_among(conn, partitions, transition_ids)


def _id_of(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    found = record.get("id") if isinstance(record, dict) else None
    return found if isinstance(found, str) else None
