"""The foundation against the real servers: produce and consume through our
factories on the real broker, write and read the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.codec import decode, encode
from shared.db import make_engine
from shared.events import Event
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import make_consumer
from shared.kafka.producer import make_producer
from shared.topics import Topics
from tests.contracts import sample_event
from tests.servers import ROOT


async def test_events_produced_with_our_producer_are_consumed_in_order_per_key(
    live_kafka: str, topics: Topics
) -> None:
    producer = make_producer(live_kafka, client_id="test")
    await producer.start()
    sent = [sample_event(message_id=f"m-{i}", user_id=f"u-{i % 4}") for i in range(40)]
    try:
        for event in sent:
            await producer.send_and_wait(
                topics.events, encode(event), key=event.partition_key.encode()
            )
    finally:
        await producer.stop()

    consumer = make_consumer(live_kafka, group_id=None, client_id="test")
    await consumer.start()
    received: list[Event] = []
    try:
        partitions = [TopicPartition(topics.events, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while len(received) < len(sent):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"no records within 10s; got {len(received)} of {len(sent)}"
            for records in batch.values():
                received.extend(decode(Event, record.value) for record in records)
    finally:
        await consumer.stop()

    assert sorted(e.message_id for e in received) == sorted(e.message_id for e in sent)
    for user in {e.user_id for e in sent}:
        want = [e.message_id for e in sent if e.user_id == user]
        assert [e.message_id for e in received if e.user_id == user] == want


async def test_ensure_topics_creates_the_configured_partition_count_and_is_idempotent(
    live_kafka: str, topics: Topics
) -> None:
    name = topics.events + ".extra"
    await ensure_topics(live_kafka, [name], partitions=7)
    await ensure_topics(live_kafka, [name], partitions=7)
    admin = AIOKafkaAdminClient(bootstrap_servers=live_kafka)
    await admin.start()
    try:
        described = await admin.describe_topics([name])
        assert len(described[0]["partitions"]) == 7
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def test_postgres_round_trip(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("create table probe (id int primary key, body jsonb)"))
            await conn.execute(text("insert into probe values (1, '{\"a\": 1}')"))
        async with engine.connect() as conn:
            version = (await conn.execute(text("show server_version"))).scalar_one()
            body = (await conn.execute(text("select body from probe where id = 1"))).scalar_one()
        assert body == {"a": 1}
        assert int(version.split(".")[0]) >= 13
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    fresh_database_url: str,
) -> None:
    """PostgreSQL restarted or the network cut while a connection sat in the pool: the
    next checkout pings it, finds it dead and hands out a new one; the caller's first
    statement runs. (Without the ping that statement fails on the dead connection.)"""
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            pooled = (await conn.execute(text("select pg_backend_pid()"))).scalar_one()
        url = make_url(fresh_database_url).set(drivername="postgresql")
        other = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            assert await other.fetchval("select pg_terminate_backend($1)", pooled) is True
        finally:
            await other.close()
        async with engine.connect() as conn:
            serving = (await conn.execute(text("select pg_backend_pid()"))).scalar_one()
        assert serving != pooled
    finally:
        await engine.dispose()


def test_a_dead_broker_fails_the_tests_fast_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        textwrap.dedent("""
        async def test_needs_kafka(live_kafka):
            pass
    """)
    )
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(probe),
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Kafka broker at 127.0.0.1:1 does not answer" in done.stdout
