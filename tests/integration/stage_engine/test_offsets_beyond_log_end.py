"""The events topic deleted and recreated while the engine is away: the offsets stored
in the database lie past the new log's end. Read from there, the new events would be
skipped as already applied; instead the assignment resets them to the log's beginning,
counts and logs it, and every new event is applied."""

from __future__ import annotations

from stage_engine.main import migrate_database

from shared.topics import Topics
from tests.integration.stage_engine.faults_support import orders, recreate_topic, served_engine
from tests.integration.stage_engine.support import (
    consumed_offsets,
    produce,
    settings_for,
    stored_states,
    wait_until_drained,
)
from tests.waiting import eventually

OLD_PER_PARTITION = 10
NEW_PER_PARTITION = 4  # fewer: the new log ends before the stored offsets


async def test_offsets_past_a_recreated_topics_end_restart_from_its_beginning(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    await migrate_database(settings)
    async with served_engine(settings) as served:
        for partition in range(3):
            old = orders(f"old{partition}", 1, each=OLD_PER_PARTITION)
            await produce(kafka_bootstrap, topics.events, old, partition=partition)
        await wait_until_drained(kafka_bootstrap, settings)
    assert served.engine.failure is None
    stored = await consumed_offsets(fresh_database_url, topics.events)
    assert stored == dict.fromkeys(range(3), OLD_PER_PARTITION)

    await recreate_topic(kafka_bootstrap, topics.events, partitions=3)
    for partition in range(3):
        new = orders(f"new{partition}", NEW_PER_PARTITION, each=1)
        await produce(kafka_bootstrap, topics.events, new, partition=partition)

    async with served_engine(settings) as served:

        async def applied() -> float:
            return served.metric("stage_engine_events_total", {"outcome": "applied"})

        # (wait_until_drained would pass at once: the stored offsets are past the end)
        await eventually(applied, until=lambda n: n >= 3 * NEW_PER_PARTITION, what="new applied")
        resets = served.metric("stage_engine_offset_resets_total", {"reason": "beyond_log_end"})
        assert resets == 3
        await eventually(
            lambda: consumed_offsets(fresh_database_url, topics.events),
            until=lambda stored: stored == dict.fromkeys(range(3), NEW_PER_PARTITION),
            what="offsets at the new log's end",
        )
        assert await applied() == 3 * NEW_PER_PARTITION
    assert served.engine.failure is None
    states = await stored_states(fresh_database_url)
    for partition in range(3):
        for user in range(NEW_PER_PARTITION):
            assert states[f"new{partition}-user-{user}"]["orders"] == 1
        assert states[f"old{partition}-user-0"]["orders"] == OLD_PER_PARTITION
