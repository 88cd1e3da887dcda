"""Transitions that decode but that the ledger cannot hold are dead-lettered one by one;
the others in their batch are planned once, and the notifier keeps running (issue 14)."""

from __future__ import annotations

import orjson
from notifier.devsink import DevSink

from shared.kafka.dead_letter import HEADER_ERROR
from shared.topics import Topics, dead_letter_topic
from tests.integration.notifier.harness import (
    SMS_ON_SILENT,
    TopicReader,
    count_actions,
    playbook,
    produce,
    running_notifier,
    settings,
    transition,
)
from tests.waiting import eventually

SMS = SMS_ON_SILENT


async def test_a_transition_the_ledger_cannot_hold_is_dead_lettered_and_the_rest_planned(
    live_kafka: str, topics: Topics, fresh_database_url: str, http_sink: DevSink
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, sink_url=http_sink.url)
    good = [transition(f"u-ok-{n}") for n in range(4)]
    hostile = [transition("x" * 10_000), transition("u\x00x")]
    async with (
        running_notifier(config, playbook(SMS)) as service,
        TopicReader(live_kafka, dead_letter_topic(topics.transitions)) as letters,
    ):
        await produce(live_kafka, topics.transitions, [good[0], *hostile[:1], *good[1:3]])
        await produce(live_kafka, topics.transitions, [hostile[1], good[3], good[0]])
        await eventually(letters.poll, until=lambda got: len(got) >= 2, what="two dead letters")
        await eventually(
            lambda: count_actions(service),
            until=lambda n: n == len(good),
            what="one action per good transition",
        )
        refused = service.metrics.transitions_refused._value.get()
    subjects = sorted(orjson.loads(value)["subject"][:8] for value in letters.values)
    assert subjects == ["u\x00x", "x" * 8]
    assert all(b"refused by the ledger" in h[HEADER_ERROR] for h in letters.headers)
    assert refused == 2
