"""Outbox -> Kafka: outcomes to TOPIC_NOTIFICATIONS, given-up actions to its dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.metrics import NotifierMetrics
from notifier.store import tables as t
from notifier.store.dialect import one_of
from notifier.store.held import HeldConnection
from shared.topics import Topics, dead_letter_topic

BATCH_ROWS = 1000
_LINGER_S = 0.01  # gather the records of several commits into one publish
_MAX_OUTAGE_BACKOFF_S = 30.0

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        topics: Topics,
        metrics: NotifierMetrics,
        poll_interval_s: float,
    ) -> None:
        self._engine = engine
        self._connection = HeldConnection(engine)
        self._producer = producer
        self._topic_of = {
            t.OUTCOME: topics.notifications,
            t.DEAD_LETTER: dead_letter_topic(topics.notifications),
        }
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._connection.close()

    async def _run(self) -> None:
        outage_s = 0.0
        while True:
            self._wake.clear()
            try:
                published = await self.publish_once()
            except KafkaError as exc:
                # The broker is away: the records wait in the outbox (the transaction
                # rolled back), and we try again, backing off up to a limit.
                outage_s = min(_MAX_OUTAGE_BACKOFF_S, max(0.5, outage_s * 2))
                log.warning(
                    "publishing the outbox failed; retrying",
                    extra={"error": repr(exc), "retry_in_s": outage_s},
                )
                await asyncio.sleep(outage_s)
                continue
            outage_s = 0.0
            if published < BATCH_ROWS:
                if await _woken(self._wake, self._poll_interval_s):
                    await asyncio.sleep(_LINGER_S)
                else:
                    await self._refresh_backlog()

    async def publish_once(self) -> int:
        """Publish the oldest records, wait for Kafka's acks, then delete them.

        The rows stay locked (SKIP LOCKED for other replicas) while they are in
        flight. Killed after the acks and before the delete commits: the rows are
        published again with the same record ids, which readers de-duplicate.
        """
        o = t.outbox.c
        async with self._connection.begin() as conn:
            rows = (
                await conn.execute(
                    select(o.seq, o.kind, o.record_key, o.record_value, o.headers)
                    .order_by(o.seq)
                    .limit(BATCH_ROWS)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    self._topic_of[row.kind],
                    bytes(row.record_value),
                    key=bytes(row.record_key),
                    headers=[(name, value.encode()) for name, value in row.headers or ()],
                )
                for row in rows
            ]
            for future in futures:
                await future
            await conn.execute(
                delete(t.outbox).where(one_of(conn, o.seq, (row.seq for row in rows)))
            )
        for kind, count in Counter(row.kind for row in rows).items():
            self._metrics.outbox_published.labels(kind).inc(count)
        return len(rows)

    async def _refresh_backlog(self) -> None:
        async with self._engine.connect() as conn:
            backlog = (await conn.execute(select(func.count()).select_from(t.outbox))).scalar_one()
        self._metrics.outbox_backlog.set(backlog)


async def _woken(event: asyncio.Event, timeout_s: float) -> bool:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
