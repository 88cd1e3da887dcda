"""Helpers for the stage engine's integration tests: settings, an in-process or
subprocess engine, producing events, reading topics and stored states."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition
from pydantic import SecretStr
from sqlalchemy import select
from stage_engine.lifecycle import LifecycleConfig
from stage_engine.main import migrate_database, start_engine
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database
from stage_engine.store.tables import offsets, outbox_heads, users
from stage_engine.store.users import decode_state

from shared.clock import Clock
from shared.codec import encode
from shared.db import make_engine
from shared.events import Event
from shared.kafka.consumer import make_consumer
from shared.kafka.producer import make_producer
from shared.topics import Topics
from tests.scratch import scratch_database, scratch_topic_names
from tests.waiting import eventually, within

# Each broker helper is bounded: a stuck client fails its test naming the step.
BROKER_STEP_S = 60.0
ENGINE_STOP_S = 90.0

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def settings_for(
    topics: Topics, bootstrap: str, database_url: str, **overrides: Any
) -> StageEngineSettings:
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "database_url": database_url,
        "topic_events": topics.events,
        "topic_transitions": topics.transitions,
        "topic_notifications": topics.notifications,
        "topic_partitions": 3,
        "stage_engine_group": f"{topics.events}.engine",
        "stage_timer_interval_ms": 100,
        "stage_relay_interval_ms": 50,
        "stage_poll_timeout_ms": 100,
        "stage_stats_interval_seconds": 0.5,
        "stage_rfm_refresh_seconds": 0,
    }
    fields.update(overrides)
    return StageEngineSettings(**fields)


def as_env(settings: StageEngineSettings) -> dict[str, str]:
    """The settings as environment variables, for `python -m stage_engine`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAGE_", "TOPIC_"))}
    for name, dumped in settings.model_dump().items():
        value = dumped.get_secret_value() if isinstance(dumped, SecretStr) else dumped
        if value is not None:
            env[name.upper()] = str(value)
    return env


@asynccontextmanager
async def running_engine(
    settings: StageEngineSettings,
    *,
    clock: Clock | None = None,
    config: LifecycleConfig | None = None,
) -> AsyncIterator[Engine]:
    await migrate_database(settings)
    async with within(BROKER_STEP_S, "starting the engine"):
        engine = await start_engine(settings, clock=clock, lifecycle_config=config)
    try:
        yield engine
    finally:
        # Engine.stop bounds each of its steps (handover 10 s, then 15 s per client).
        async with within(ENGINE_STOP_S, "stopping the engine"):
            await engine.stop()
    assert engine.failure is None, f"an engine loop failed: {engine.failure!r}"


def spawn_engine(settings: StageEngineSettings, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m stage_engine` as a child process (for kill -9), logging to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stage_engine"],
            env=as_env(settings),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def event(
    message_id: str,
    *,
    at: datetime,
    type: str = "track",
    name: str | None = "Viewed Product",
    user_id: str | None = None,
    anonymous_id: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    previous_id: str | None = None,
) -> Event:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "type": type,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "previous_id": previous_id,
        "timestamp": at,
        "received_at": at,
        "properties": properties or {},
        "traits": traits or {},
    }
    if type == "track":
        fields["event"] = name
    elif type in ("page", "screen"):
        fields["name"] = name
    return Event.model_validate(fields)


async def produce(
    bootstrap: str, topic: str, events: Iterable[Event], *, partition: int | None = None
) -> int:
    """Send the events keyed like ingest does (to `partition` when given) and wait for acks."""
    producer = make_producer(bootstrap, client_id="test-events")
    await producer.start()
    sent = 0
    try:
        async with within(BROKER_STEP_S, f"producing to {topic}"):
            futures = []
            for item in events:
                key = item.partition_key.encode()
                futures.append(
                    await producer.send(topic, encode(item), key=key, partition=partition)
                )
                sent += 1
            for future in futures:
                await future
    finally:
        await producer.stop()
    return sent


async def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = make_producer(bootstrap, client_id="test-raw")
    await producer.start()
    try:
        async with within(BROKER_STEP_S, f"producing a raw record to {topic}"):
            await (await producer.send(topic, value, key=key))
    finally:
        await producer.stop()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    producer = make_producer(bootstrap, client_id="test-metadata")
    await producer.start()
    try:
        async with within(BROKER_STEP_S, f"reading the partitions of {topic}"):
            return sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record now in `topic`, partition by partition."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = make_consumer(bootstrap, group_id=None, client_id="test-reader")
    await consumer.start()
    try:
        async with within(BROKER_STEP_S, f"reading {topic} to its end"):
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[Any] = []
            for tp in tps:
                while await consumer.position(tp) < ends[tp]:
                    polled = await consumer.getmany(tp, timeout_ms=1000)
                    records.extend(polled.get(tp, []))
            return records
    finally:
        await consumer.stop()


async def read_transitions(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(record.value) for record in await read_topic(bootstrap, topic)]


async def stored_states(database_url: str) -> dict[str, dict[str, Any]]:
    db = Database(make_engine(database_url))
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(users.c.user_id, users.c.state))).all()
        # As format-1 dicts (the stored rows are arrays): tests compare fields by name.
        return {
            user_id: orjson.loads(orjson.dumps(decode_state(state).to_dict()))
            for user_id, state in rows
        }
    finally:
        await db.dispose()


async def consumed_offsets(database_url: str, topic: str) -> dict[int, int]:
    db = Database(make_engine(database_url))
    try:
        async with db.read() as conn:
            query = select(offsets.c.partition, offsets.c.next_offset).where(
                offsets.c.topic == topic
            )
            return {row[0]: row[1] for row in (await conn.execute(query)).all()}
    finally:
        await db.dispose()


async def outbox_size(database_url: str) -> int:
    """Transitions queued and not yet past their partition's cursor, in all partitions."""
    db = Database(make_engine(database_url))
    try:
        async with db.read() as conn:
            partitions = (await conn.execute(select(outbox_heads.c.partition))).scalars().all()
            return await transition_store.outbox_backlog(conn, partitions)
    finally:
        await db.dispose()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    partitions = await partitions_of(bootstrap, topic)
    consumer = make_consumer(bootstrap, group_id=None, client_id="test-ends")
    await consumer.start()
    try:
        async with within(BROKER_STEP_S, f"reading the end offsets of {topic}"):
            tps = [TopicPartition(topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def wait_until_drained(
    bootstrap: str, settings: StageEngineSettings, *, timeout_s: float = 60.0
) -> None:
    """Every event consumed (stored offsets at the end) and the outbox empty."""
    ends = await end_offsets(bootstrap, settings.topic_events)
    url = settings.database_url.get_secret_value()

    async def probe() -> tuple[dict[int, int], int]:
        return (
            await consumed_offsets(url, settings.topic_events),
            await outbox_size(url),
        )

    await eventually(
        probe,
        until=lambda got: all(got[0].get(p, 0) >= end for p, end in ends.items()) and got[1] == 0,
        timeout_s=timeout_s,
        interval_s=0.2,
        what=f"events consumed up to {ends} and outbox empty",
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)


def kinds(transitions: Sequence[dict[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    """(subject, reason, from, to) of each stage change, for readable assertions."""
    return [
        (t["subject"], t["data"]["reason"], t["data"].get("from_stage"), t["data"]["to_stage"])
        for t in transitions
        if t["data"]["kind"] == "stage_changed"
    ]


@asynccontextmanager
async def extra_database(database_url: str) -> AsyncIterator[str]:
    """A second database of the test's own on the same server, dropped afterwards."""
    async with scratch_database(database_url) as url:
        yield url


@asynccontextmanager
async def extra_topic(bootstrap: str, name: str) -> AsyncIterator[str]:
    """A topic of the test's own beside the fixture's, deleted afterwards."""
    async with scratch_topic_names(bootstrap, [name], partitions=3):
        yield name


async def due_rows(database_url: str, now: datetime) -> int:
    db = Database(make_engine(database_url))
    try:
        async with db.read() as conn:
            query = select(users.c.user_id).where(users.c.next_due_at <= now)
            return len((await conn.execute(query)).all())
    finally:
        await db.dispose()
