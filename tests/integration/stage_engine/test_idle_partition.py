"""Event clock: an idle, caught-up partition follows the other partitions' time
when STAGE_IDLE_PARTITION_SECONDS is set, so an import's last timers fire."""

from __future__ import annotations

from typing import Any

from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    days,
    event,
    produce,
    read_transitions,
    running_engine,
    settings_for,
)
from tests.waiting import eventually


async def test_an_idle_partition_fires_its_timers_at_the_owned_event_time(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(
        topics,
        kafka_bootstrap,
        fresh_database_url,
        stage_clock="event",
        stage_allowed_lateness_seconds=60,
        stage_idle_partition_seconds=1.0,
    )
    # bob signs up in partition 1 and is never seen again; partition 0 goes on 40 days.
    bob = [event("b1", at=T0, name="Signed Up", user_id="bob")]
    others = [event(f"o{n}", at=T0 + days(n), user_id="carol") for n in range(41)]

    async def bob_stages() -> list[Any]:
        published = await read_transitions(kafka_bootstrap, topics.transitions)
        return [
            t["data"]["to_stage"]
            for t in published
            if t["subject"] == "bob" and t["data"]["kind"] == "stage_changed"
        ]

    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.events, bob, partition=1)
        await produce(kafka_bootstrap, topics.events, others, partition=0)
        stages = await eventually(
            bob_stages,
            until=lambda s: "churned" in s,
            timeout_s=30,
            what="bob's partition following the owned event time to churned",
        )
    assert stages == ["new", "silent", "churned"]
