"""Read the transitions and notifications topics: what users received, and what to show.

A read-only observer: no consumer group, no offsets committed anywhere. It
starts at the end of each topic, so a run reacts only to what happens during
it, and a restart simply starts watching from the new end (nothing to lose:
the services own the data; the simulator only reacts to it).
"""

from __future__ import annotations

from collections import deque

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.codec import decode
from shared.errors import DecodeError, LifecycleError
from shared.kafka.consumer import make_consumer
from shared.notifications import NotificationOutcome, OutcomeResult
from shared.topics import Topics
from shared.transitions import Transition
from simulator.model import RESPONSE_CHANCE, Notice
from simulator.stats import LiveStats


class MissingTopicError(LifecycleError):
    """A topic the simulator watches does not exist."""


async def _partitions_of(bootstrap_servers: str, names: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lifecycle-sim")
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions: list[TopicPartition] = []
    for topic in described:
        numbers = sorted(p["partition"] for p in topic.get("partitions") or [])
        if topic.get("error_code") or not numbers:
            raise MissingTopicError(f"topic {topic.get('topic')!r} does not exist on the broker")
        partitions.extend(TopicPartition(topic["topic"], number) for number in numbers)
    return partitions


class TopicWatch:
    def __init__(self, bootstrap_servers: str, topics: Topics, stats: LiveStats) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = topics
        self._stats = stats
        self._consumer: AIOKafkaConsumer = make_consumer(
            bootstrap_servers, group_id=None, client_id="lifecycle-simulator"
        )
        self.notices: deque[Notice] = deque()

    async def start(self) -> None:
        """Assign every partition of both topics and pin the current end before any call is sent."""
        names = [self._topics.transitions, self._topics.notifications]
        partitions = await _partitions_of(self._bootstrap_servers, names)
        await self._consumer.start()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self._consumer.position(partition)  # resolves the end offset now, not later

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        """Read what is there; count it in the stats; queue what users received. Returns records."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5_000)
        records = 0
        for partition, messages in batches.items():
            records += len(messages)
            for message in messages:
                if partition.topic == self._topics.transitions:
                    self._on_transition(message.value)
                else:
                    self._on_outcome(message.value)
        return records

    def _on_transition(self, value: bytes | None) -> None:
        try:
            transition = decode(Transition, value)
        except DecodeError:
            # The engine dead-letters its own poison; an observer only counts what it cannot read.
            self._stats.undecodable_records += 1
            return
        self._stats.count_transition(transition)

    def _on_outcome(self, value: bytes | None) -> None:
        try:
            outcome = decode(NotificationOutcome, value)
        except DecodeError:
            self._stats.undecodable_records += 1
            return
        self._stats.count_outcome(outcome)
        if outcome.result is OutcomeResult.SENT and outcome.channel in RESPONSE_CHANCE:
            self.notices.append(
                Notice(
                    notice_id=outcome.id,
                    user_id=outcome.user_id,
                    channel=outcome.channel,
                    sent_at=outcome.occurred_at,
                    coupon_code=outcome.coupon.code if outcome.coupon else None,
                )
            )
