"""Session servers (real Kafka, real PostgreSQL) and per-test topics and databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.kafka.ping import broker_answers
from shared.topics import Topics
from tests.scratch import scratch_database, scratch_topics
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
    async with scratch_topics(live_kafka, partitions=3) as own:
        yield own


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """A database of the test's own on the real PostgreSQL, dropped afterwards."""
    async with scratch_database(database_url) as url:
        yield url
