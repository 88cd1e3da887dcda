"""Hand a request's events to Kafka and wait until every one is acknowledged.

A request is answered 200 only after this returns. Killed right after the
acknowledgement, the events are durable (acks=all) and the client saw no
answer, so it retries: the duplicates carry the same messageId and are
dropped downstream. Killed before, nothing was acknowledged and the retry is
the only copy that counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from ingest.broker import BrokerLink


class PublishError(Exception):
    """The events of a request were not all acknowledged; answer 503."""

    code = "broker_unavailable"


class BrokerUnavailableError(PublishError):
    code = "broker_unavailable"


class OverloadedError(PublishError):
    code = "overloaded"


class ProduceTimeoutError(PublishError):
    code = "produce_timeout"


class InFlight:
    """Counts events held by the producer (sent, not yet acknowledged or failed).

    A request that would take the count over `limit` is refused at once, so
    memory stays bounded while the broker is slow or away. A request bigger
    than the limit may still go alone (its size is bounded by the body limit).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0  # read by the in-flight gauge when /metrics is scraped

    def try_acquire(self, events: int) -> bool:
        if self.count and self.count + events > self.limit:
            return False
        self.count += events
        return True

    def release(self, events: int) -> None:
        self.count -= events

    def release_one(self, _future: asyncio.Future[object]) -> None:
        if not _future.cancelled():
            _future.exception()  # retrieved: nobody else will look at a late failure
        self.release(1)


class Publisher:
    def __init__(
        self, link: BrokerLink, *, topic: str, timeout_s: float, in_flight: InFlight
    ) -> None:
        self._link = link
        self._topic = topic
        self._timeout_s = timeout_s
        self._in_flight = in_flight

    @property
    def connected(self) -> bool:
        return self._link.producer is not None

    def admit(self) -> None:
        """Refuse at once, before a body is read, when no event could be taken now."""
        if self._link.producer is None:
            raise BrokerUnavailableError("the Kafka broker cannot be reached")
        if self._in_flight.count >= self._in_flight.limit:
            raise OverloadedError(f"{self._in_flight.count} events are waiting for Kafka")

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send every (key, value) and return when Kafka acknowledged all of them."""
        producer = self._link.producer
        if producer is None:
            raise BrokerUnavailableError("the Kafka broker cannot be reached")
        count = len(records)
        if not self._in_flight.try_acquire(count):
            waiting, limit = self._in_flight.count, self._in_flight.limit
            raise OverloadedError(f"{waiting} events are waiting for Kafka (limit {limit})")
        futures: list[asyncio.Future[object]] = []
        try:
            try:
                # One deadline for both steps: send() itself can wait (for metadata, or
                # room in the buffer), then the acks. All sends go out before the wait,
                # so they share produce requests.
                async with asyncio.timeout(self._timeout_s):
                    for key, value in records:
                        futures.append(await producer.send(self._topic, value, key=key))
                    # asyncio.wait, unlike awaiting the futures, does not cancel them on
                    # timeout: an unacknowledged event stays counted in flight until the
                    # producer settles it.
                    await asyncio.wait(futures)
            finally:
                error = self._settle(count, futures)
        except TimeoutError:
            unacknowledged = count - sum(future.done() for future in futures)
            raise ProduceTimeoutError(
                f"Kafka did not acknowledge {unacknowledged} of {count} events "
                f"within {self._timeout_ms} ms"
            ) from None
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka refused the events: {exc!r}") from None
        if error is not None:
            raise BrokerUnavailableError(f"Kafka did not acknowledge an event: {error!r}")

    @property
    def _timeout_ms(self) -> int:
        return round(self._timeout_s * 1000)

    def _settle(self, count: int, futures: list[asyncio.Future[object]]) -> BaseException | None:
        """Release what is settled now, the rest when the producer settles it; the first failure."""
        settled = count - len(futures)  # never handed to the producer
        first_error: BaseException | None = None
        for future in futures:
            if not future.done():
                future.add_done_callback(self._in_flight.release_one)
                continue
            settled += 1
            error = None if future.cancelled() else future.exception()
            if first_error is None:
                first_error = error
        self._in_flight.release(settled)
        return first_error
