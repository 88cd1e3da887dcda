"""The producer's lifecycle: connect at start-up, and keep trying while the broker is away.

The first connection is awaited (bounded) so a healthy service takes events as
soon as it listens. If it fails, the service still starts: /readyz says not
ready, requests get 503 with Retry-After, and a background task reconnects
with capped exponential backoff. A started aiokafka producer reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.kafka.admin import ensure_topics
from shared.kafka.producer import ProducerTuning, make_producer
from shared.shutdown import stop_within

log = logging.getLogger(__name__)

_CONNECT_ERRORS = (KafkaError, OSError, TimeoutError, RuntimeError)


class BrokerLink:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: Sequence[str],
        partitions: int,
        replication_factor: int,
        min_insync_replicas: int,
        connect_timeout_s: float,
        max_backoff_s: float,
        tuning: ProducerTuning,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._min_insync_replicas = min_insync_replicas
        self._connect_timeout_s = connect_timeout_s
        self._max_backoff_s = max_backoff_s
        self._tuning = tuning
        self._reconnect_task: asyncio.Task[None] | None = None
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if not await self._connect_once():
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="ingest-reconnect")

    async def stop(self) -> None:
        """Stop reconnecting, then flush and close the producer.

        Every event answered 200 was acknowledged already; flushing settles the
        rest (events of requests answered 503 after a timeout), which clients retry.
        """
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        producer, self.producer = self.producer, None
        if producer is not None:
            await stop_within("events producer", producer.stop)

    async def _reconnect(self) -> None:
        backoff_s = 0.1
        while True:
            await asyncio.sleep(backoff_s)  # backoff between connection attempts
            if await self._connect_once():
                return
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    async def _connect_once(self) -> bool:
        producer = make_producer(self._bootstrap_servers, client_id="ingest", tuning=self._tuning)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await producer.start()
                await ensure_topics(
                    self._bootstrap_servers,
                    self._topics,
                    partitions=self._partitions,
                    replication_factor=self._replication_factor,
                    min_insync_replicas=self._min_insync_replicas,
                )
        except _CONNECT_ERRORS as exc:
            log.warning(
                "cannot reach the Kafka broker; answering 503 until it can be reached",
                extra={"bootstrap_servers": self._bootstrap_servers, "error": repr(exc)},
            )
            with contextlib.suppress(*_CONNECT_ERRORS):
                await producer.stop()
            return False
        self.producer = producer
        log.info("connected to Kafka", extra={"bootstrap_servers": self._bootstrap_servers})
        return True
