"""The broker is killed in the middle of a run and comes back.

While it is down every call gets 503 with Retry-After, never 200; once it is back the
calls succeed again, and every call that got 200 is on the topic exactly once. A call
answered 503 may still be written (its produce was in flight when the timeout struck):
Segment SDKs retry it with the same messageId, and the stage engine drops the repeat.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx

from shared.kafka.admin import ensure_topics
from shared.topics import Topics
from tests.integration.ingest.support import AUTH, in_process, read_topic, settings_for
from tests.private_kafka import PrivateKafka, private_kafka
from tests.waiting import eventually


@dataclass
class Sender:
    """Sends one /v1/track after another, each with its own messageId, and keeps the answers."""

    client: httpx.AsyncClient
    statuses: dict[str, int] = field(default_factory=dict)
    # messageId -> (sent, answered), on the loop's clock
    times: dict[str, tuple[float, float]] = field(default_factory=dict)
    retry_after_missing: list[str] = field(default_factory=list)
    stopped: bool = False

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses.values() if s == status)

    def answered_within(self, start: float, end: float) -> dict[str, int]:
        """The calls sent after `start` and answered before `end`, with their statuses."""
        return {
            m: self.statuses[m]
            for m, (sent, answered) in self.times.items()
            if sent > start and answered < end
        }

    async def run(self) -> None:
        n = 0
        while not self.stopped:
            message_id = f"killed-{n}"
            n += 1
            body = {"userId": f"u{n % 7}", "event": "Tick", "messageId": message_id}
            loop = asyncio.get_running_loop()
            sent = loop.time()
            response = await self.client.post("/v1/track", json=body, auth=AUTH)
            self.statuses[message_id] = response.status_code
            self.times[message_id] = (sent, loop.time())
            if response.status_code == 503 and "retry-after" not in response.headers:
                self.retry_after_missing.append(message_id)


async def test_a_broker_killed_mid_run_gets_503_never_200_and_loses_no_accepted_call() -> None:
    topics = Topics(
        events="killed.events",
        transitions="killed.transitions",
        notifications="killed.notifications",
    )
    with private_kafka() as broker:
        await ensure_topics(broker.bootstrap, topics.all(), partitions=3)
        settings = settings_for(
            broker.bootstrap,
            topics,
            ingest_produce_timeout_ms=1000,
            ingest_kafka_connect_timeout_ms=1000,
            ingest_kafka_reconnect_max_backoff_ms=300,
        )
        async with in_process(settings) as client:
            sender = Sender(client)
            sending = asyncio.create_task(sender.run())
            try:
                await phase(sender, broker)
            finally:
                sender.stopped = True
                await sending

        assert set(sender.statuses.values()) <= {200, 503}, Counter(sender.statuses.values())
        assert sender.retry_after_missing == []
        written = Counter(
            w.event.message_id for w in await read_topic(broker.bootstrap, topics.events)
        )
        accepted = [m for m, status in sender.statuses.items() if status == 200]
        assert [m for m in accepted if written[m] != 1] == []
        assert set(written) <= set(sender.statuses)


async def phase(sender: Sender, broker: PrivateKafka) -> None:
    loop = asyncio.get_running_loop()

    async def accepted() -> int:
        return sender.count(200)

    await eventually(accepted, until=lambda n: n >= 50, what="50 calls accepted before the kill")
    await asyncio.to_thread(broker.kill)
    killed_at = loop.time()

    async def refused_while_dead() -> dict[str, int]:
        return sender.answered_within(killed_at, loop.time())

    await eventually(
        refused_while_dead,
        until=lambda answers: sum(1 for s in answers.values() if s == 503) >= 3,
        timeout_s=30,
        what="503s with the broker dead",
    )
    restarted_at = loop.time()
    await asyncio.to_thread(broker.start)
    while_dead = sender.answered_within(killed_at, restarted_at)
    assert [m for m, status in while_dead.items() if status != 503] == []
    accepted_before_restart = sender.count(200)
    await eventually(
        accepted,
        until=lambda n: n >= accepted_before_restart + 50,
        timeout_s=60,
        what="50 more calls accepted after the restart",
    )
