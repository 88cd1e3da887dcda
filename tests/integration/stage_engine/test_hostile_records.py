"""Records that decode but fail in the rules or the database are dead-lettered one by one;
their neighbours are applied once, and the engine keeps running (issue 14).

The records are written straight to the events topic, as a producer other than ingest
(or an ingest without today's bounds) could: ingest refuses all of them at the door.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import select
from stage_engine.store.tables import quarantine, users

from shared.db import make_engine
from shared.events import Event
from shared.kafka.dead_letter import HEADER_ERROR, HEADER_SOURCE_OFFSET
from shared.topics import Topics, dead_letter_topic
from tests.integration.stage_engine.support import (
    T0,
    event,
    produce,
    read_topic,
    running_engine,
    settings_for,
    stored_states,
    wait_until_drained,
)
from tests.waiting import eventually


def _order(message_id: str, user_id: str, revenue: float, at: datetime) -> Event:
    return event(
        message_id,
        at=at,
        user_id=user_id,
        name="Order Completed",
        properties={"revenue": revenue},
    )


def _hostile_and_good() -> tuple[list[Event], set[str]]:
    """Good events around four hostile ones, all for partition 0; the hostile ids."""
    late_offset = timezone(-timedelta(hours=5))
    hostile = [
        # Converting to UTC overflows.
        event("far-future", at=datetime(9999, 12, 31, 23, tzinfo=late_offset), user_id="h1"),
        # The due-date computation overflows.
        event("due-overflow", at=datetime(9999, 12, 31, tzinfo=UTC), user_id="h2"),
        # PostgreSQL refuses NUL in text.
        event("nul-user", at=T0, user_id="u\x00x"),
        # The second order makes the revenue sum infinite.
        _order("revenue-2", "rich", 1.7e308, T0 + timedelta(minutes=2)),
    ]
    good = [
        event("g1", at=T0, user_id="good-1"),
        _order("revenue-1", "rich", 1.7e308, T0 + timedelta(minutes=1)),
        event("g2", at=T0, user_id="good-2"),
        event("g3", at=T0 + timedelta(minutes=3), user_id="good-1"),
        event("g4", at=T0, user_id="good-3"),
    ]
    mixed = [good[0], hostile[0], good[1], hostile[1], good[2], hostile[2], hostile[3]]
    mixed += good[3:]
    return mixed, {e.message_id for e in hostile}


async def test_hostile_records_are_dead_lettered_and_their_neighbours_applied_once(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    mixed, hostile_ids = _hostile_and_good()
    # Produced before the engine starts, so that one polled batch holds them all.
    await produce(kafka_bootstrap, topics.events, mixed, partition=0)
    async with running_engine(settings) as engine:
        await wait_until_drained(kafka_bootstrap, settings)
        letters = await eventually(
            lambda: read_topic(kafka_bootstrap, dead_letter_topic(topics.events)),
            until=lambda got: len(got) >= len(hostile_ids),
            what="the hostile records on the dead-letter topic",
        )
        rejected = engine.metrics.dead_letters.labels("rejected")._value.get()
        assert engine.failure is None
    errors = {
        _message_id(letter.value): dict(letter.headers)[HEADER_ERROR].decode() for letter in letters
    }
    assert set(errors) == hostile_ids
    assert "OverflowError" in errors["far-future"]
    assert "OverflowError" in errors["due-overflow"]
    assert "rejected by the database" in errors["nul-user"]
    assert "ValueOutOfRangeError" in errors["revenue-2"]
    assert all(HEADER_SOURCE_OFFSET in dict(letter.headers) for letter in letters)
    assert rejected == len(hostile_ids)
    states = await stored_states(fresh_database_url)
    assert set(states) == {"good-1", "good-2", "good-3", "rich"}
    assert states["good-1"]["last_event_at"] == (T0 + timedelta(minutes=3)).isoformat()
    assert states["rich"]["orders"] == 1  # the first order only, and readable


async def test_after_a_restart_the_poison_record_is_not_read_again(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    poison = event("poison", at=datetime(9999, 12, 31, tzinfo=UTC), user_id="p")
    await produce(kafka_bootstrap, topics.events, [poison], partition=0)
    async with running_engine(settings):
        await wait_until_drained(kafka_bootstrap, settings)
    async with running_engine(settings) as engine:
        await produce(kafka_bootstrap, topics.events, [event("after", at=T0, user_id="a")])
        await wait_until_drained(kafka_bootstrap, settings)
        assert engine.failure is None
    letters = await read_topic(kafka_bootstrap, dead_letter_topic(topics.events))
    assert [_message_id(letter.value) for letter in letters] == ["poison"]
    assert set(await stored_states(fresh_database_url)) == {"a"}


async def test_an_unreadable_stored_row_is_quarantined_and_the_user_starts_afresh(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    async with running_engine(settings) as engine:
        await produce(kafka_bootstrap, topics.events, [event("m1", at=T0, user_id="broken")])
        await produce(kafka_bootstrap, topics.events, [event("m2", at=T0, user_id="due")])
        await wait_until_drained(kafka_bootstrap, settings)
        # Break both rows the way an infinite revenue was stored: null where a number was.
        await _break_row(fresh_database_url, "broken", due_at=None)
        await _break_row(fresh_database_url, "due", due_at=T0)  # met by the timer loop
        later = event("m3", at=T0 + timedelta(hours=1), user_id="broken")
        await produce(kafka_bootstrap, topics.events, [later])
        await wait_until_drained(kafka_bootstrap, settings)
        kept = await eventually(
            lambda: _quarantined(fresh_database_url),
            until=lambda rows: len(rows) == 2,
            what="both broken rows in the quarantine",
        )
        assert engine.metrics.quarantined._value.get() == 2
        assert engine.failure is None
    assert {row["user_id"] for row in kept} == {"broken", "due"}
    assert all("unreadable" in row["error"] for row in kept)
    states = await stored_states(fresh_database_url)
    assert states["broken"]["first_seen_at"] == later.timestamp.isoformat()
    assert "due" not in states


def _message_id(value: bytes | None) -> str:
    document: dict[str, Any] = orjson.loads(value or b"{}")
    return str(document["message_id"])


async def _break_row(database_url: str, user_id: str, *, due_at: datetime | None) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            text = (
                await conn.execute(select(users.c.state).where(users.c.user_id == user_id))
            ).scalar_one()
            row = orjson.loads(text)
            row[11] = None  # revenue
            await conn.execute(
                users.update()
                .where(users.c.user_id == user_id)
                .values(state=orjson.dumps(row).decode(), next_due_at=due_at)
            )
    finally:
        await engine.dispose()


async def _quarantined(database_url: str) -> list[dict[str, Any]]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(quarantine))).mappings().all()
            return [dict(row) for row in rows]
    finally:
        await engine.dispose()
