"""Scratch servers' contents for one test or benchmark: a database and topics of its own,
dropped and deleted when the context exits (also when the body fails)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from shared.kafka.admin import ensure_topics
from shared.topics import Topics


@contextlib.asynccontextmanager
async def scratch_database(database_url: str, *, prefix: str = "t") -> AsyncIterator[str]:
    """A new database on the server of `database_url`; yields its URL (same driver)."""
    base = make_url(database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def scratch_topic_names(
    bootstrap: str, names: Sequence[str], *, partitions: int
) -> AsyncIterator[list[str]]:
    await ensure_topics(bootstrap, names, partitions=partitions)
    try:
        yield list(names)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(list(names))
        except Exception:  # noqa: BLE001 - best effort: a stopped broker cannot delete
            pass
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def scratch_topics(
    bootstrap: str, *, partitions: int, prefix: str = "t"
) -> AsyncIterator[Topics]:
    """The pipeline's topics (and their dead-letter topics) under a new prefix."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    topics = Topics(f"{name}.events", f"{name}.transitions", f"{name}.notifications")
    async with scratch_topic_names(bootstrap, topics.all(), partitions=partitions):
        yield topics
