"""Session servers (real Kafka, real PostgreSQL) and per-test topics and databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from shared.kafka.admin import ensure_topics
from shared.kafka.ping import broker_answers
from shared.topics import Topics
from tests.servers import kafka_server, postgres_server


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with kafka_server() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
async def live_kafka(kafka_bootstrap: str) -> str:
    """The broker, checked before the test: a dead broker fails the test at once, naming it."""
    if not await broker_answers(kafka_bootstrap, timeout_s=5):
        pytest.fail(f"the Kafka broker at {kafka_bootstrap} does not answer a metadata request")
    return kafka_bootstrap


@pytest.fixture
async def topics(live_kafka: str) -> AsyncIterator[Topics]:
    """Topics of the test's own, 3 partitions each, deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    own = Topics(
        events=f"{prefix}.events",
        transitions=f"{prefix}.transitions",
        notifications=f"{prefix}.notifications",
    )
    await ensure_topics(live_kafka, own.all(), partitions=3)
    yield own
    admin = AIOKafkaAdminClient(bootstrap_servers=live_kafka)
    await admin.start()
    try:
        await admin.delete_topics(own.all())
    except Exception:  # noqa: BLE001 - best effort: a broker the test stopped cannot delete
        pass
    finally:
        await admin.close()


def _asyncpg_dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """A database of the test's own on the real PostgreSQL, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_dsn = _asyncpg_dsn(database_url, make_url(database_url).database or "postgres")
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
