"""Poison messages go to the dead-letter topic and their partition moves on; too many
in a row stop the engine without moving past them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
from sqlalchemy import text
from stage_engine.main import migrate_database, start_engine

from shared.db import make_engine
from shared.kafka.dead_letter import HEADER_ERROR, HEADER_SOURCE_OFFSET
from shared.topics import Topics, dead_letter_topic
from tests.integration.stage_engine.support import (
    T0,
    consumed_offsets,
    event,
    produce,
    produce_raw,
    read_topic,
    running_engine,
    settings_for,
    spawn_engine,
    stored_states,
    wait_until_drained,
)
from tests.ports import free_port
from tests.waiting import eventually


async def test_poison_message_goes_to_dead_letters_and_partition_moves_on(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.events, [event("m1", at=T0, user_id="before")])
        await produce_raw(kafka_bootstrap, topics.events, b"before", b"{not json")
        invalid = {"message_id": "m2", "type": "track", "user_id": "x", "timestamp": "yesterday"}
        await produce_raw(kafka_bootstrap, topics.events, b"before", orjson.dumps(invalid))
        later = event("m3", at=T0 + timedelta(hours=1), user_id="before")
        await produce(kafka_bootstrap, topics.events, [later])
        await wait_until_drained(kafka_bootstrap, settings)

        letters = await eventually(
            lambda: read_topic(kafka_bootstrap, dead_letter_topic(topics.events)),
            until=lambda got: len(got) == 2,
            what="two dead letters",
        )
    errors = sorted(dict(letter.headers)[HEADER_ERROR].decode() for letter in letters)
    assert errors[0].startswith("invalid Event: field 'timestamp'"), errors
    assert errors[1].startswith("invalid Event: not JSON"), errors
    assert {letter.value for letter in letters} == {b"{not json", orjson.dumps(invalid)}
    assert all(HEADER_SOURCE_OFFSET in dict(letter.headers) for letter in letters)
    # The event after the poison messages was applied.
    states = await stored_states(fresh_database_url)
    assert set(states) == {"before"}
    assert states["before"]["last_event_at"] == later.timestamp.isoformat()


async def test_too_many_poison_messages_in_a_row_make_the_engine_wait_not_exit(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(
        topics, kafka_bootstrap, fresh_database_url, stage_max_consecutive_poison=2
    )
    for _ in range(3):
        await produce_raw(kafka_bootstrap, topics.events, b"k", b"garbage")
    await migrate_database(settings)
    failures: list[BaseException] = []
    engine = await start_engine(settings, on_failure=failures.append)
    try:

        async def waits() -> float:
            value = engine.metrics.registry.get_sample_value(
                "stage_engine_loop_restarts_total",
                {"loop": "poll", "reason": "TooManyPoisonMessagesError"},
            )
            return float(value or 0.0)

        await eventually(waits, until=lambda n: n >= 2, timeout_s=30, what="two waits")
        assert "poll" in engine.supervisor.recovering()
        assert failures == []
    finally:
        await engine.stop()
    # Nothing moved: once the cause is fixed the same messages are read again.
    assert set((await consumed_offsets(fresh_database_url, topics.events)).values()) == {0}
    assert await read_topic(kafka_bootstrap, dead_letter_topic(topics.events)) == []


async def _value(failures: list[BaseException]) -> list[BaseException]:
    return failures


async def test_the_service_exits_non_zero_when_a_loop_dies(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path
) -> None:
    """A broken deployment (a table gone), neither a record's fault nor an outage: the
    engine stops loudly rather than dead-letter every event that meets it."""
    settings = settings_for(
        topics, kafka_bootstrap, fresh_database_url, stage_engine_port=free_port()
    )
    await migrate_database(settings)
    engine = make_engine(fresh_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE stage_engine_seen_messages"))
    finally:
        await engine.dispose()
    await produce(kafka_bootstrap, topics.events, [event("m1", at=T0, user_id="u")])
    log_path = tmp_path / "engine.log"
    child = spawn_engine(settings, log_path)
    try:
        code = await asyncio.wait_for(asyncio.to_thread(child.wait), timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = log_path.read_text()
    assert code == 1, log[-2000:]
    assert "UndefinedTableError" in log
    assert await read_topic(kafka_bootstrap, dead_letter_topic(topics.events)) == []
