"""The relay on the real broker and PostgreSQL: seq order, cursors, and recovery.

A relay killed after Kafka acknowledged a round but before its cursors committed leaves
published rows past the cursors. The next relay of those partitions finds them in the
topic and skips them: each transition is in the topic once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer
from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.recovery import OutboxRecovery
from stage_engine.relay import HEADERS, Relay
from stage_engine.store import transitions as transition_store
from stage_engine.store.database import Database
from stage_engine.store.migrate import migrate
from stage_engine.store.offsets import StoredOffset
from stage_engine.store.transitions import NewTransition

from shared.db import make_engine
from shared.kafka.producer import make_producer
from shared.topics import Topics
from tests.integration.stage_engine.support import T0, event, read_transitions

CONFIG = LifecycleConfig()
PARTITIONS = [0, 1]


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    database = Database(make_engine(fresh_database_url))
    await migrate(database.engine)
    yield database
    await database.dispose()


def _transitions(users: int) -> list[NewTransition]:
    """Each user's first transitions, users alternating between partitions 0 and 1."""
    return [
        NewTransition(t, n % 2)
        for n in range(users)
        for t in advance(None, event(f"m{n}", at=T0, user_id=f"u{n}"), CONFIG).transitions
    ]


def _relay(
    db: Database, topics: Topics, bootstrap: str, producer: AIOKafkaProducer, batch: int
) -> Relay:
    ownership = Ownership()
    ownership.take({p: StoredOffset(0, None) for p in PARTITIONS})
    return Relay(
        db=db,
        producer=producer,
        ownership=ownership,
        recovery=OutboxRecovery(
            db=db,
            producer=producer,
            bootstrap_servers=bootstrap,
            topic=topics.transitions,
            margin=timedelta(seconds=60),
        ),
        metrics=EngineMetrics(),
        topic=topics.transitions,
        batch_size=batch,
        interval_s=0.05,
    )


async def test_rows_published_before_a_kill_are_skipped_not_sent_again(
    db: Database, topics: Topics, live_kafka: str
) -> None:
    queued = _transitions(10)
    async with db.write() as conn:
        assert await transition_store.record_transitions(conn, db, queued, now=T0) == len(queued)
    producer = make_producer(live_kafka, client_id="test-relay")
    await producer.start()
    try:
        # A relay killed after Kafka's acknowledgement: the first 3 rows of partition 0
        # are in the topic, its cursor did not move.
        async with db.read() as conn:
            before_kill = await transition_store.pending_transitions(conn, {0: (0, 3)})
        for row in before_kill:
            await producer.send_and_wait(
                topics.transitions, row.body, key=row.subject.encode(), headers=HEADERS
            )
        relay = _relay(db, topics, live_kafka, producer, batch=4)
        rounds = 0
        while await relay.relay_once():
            rounds += 1
            assert rounds < 20, "the relay never ran out of rows"
        async with db.read() as conn:
            assert await transition_store.outbox_backlog(conn, PARTITIONS) == 0
    finally:
        await producer.stop()
    published = await read_transitions(live_kafka, topics.transitions)
    ids = Counter(record["id"] for record in published)
    assert set(ids) == {item.transition.id for item in queued}
    assert [tid for tid, times in ids.items() if times > 1] == []
    # One user's transitions keep their order (one key, one Kafka partition).
    for user in {item.transition.subject for item in queued}:
        mine = [item.transition.id for item in queued if item.transition.subject == user]
        assert [r["id"] for r in published if r["subject"] == user] == mine


async def test_each_round_moves_the_cursors_past_what_it_published(
    db: Database, topics: Topics, live_kafka: str
) -> None:
    queued = _transitions(6)
    async with db.write() as conn:
        await transition_store.record_transitions(conn, db, queued, now=T0)
    producer = make_producer(live_kafka, client_id="test-relay")
    await producer.start()
    try:
        relay = _relay(db, topics, live_kafka, producer, batch=2)  # 1 row a partition a round
        assert await relay.relay_once() is True
        async with db.read() as conn:
            cursors = await transition_store.lock_cursors(conn, db, PARTITIONS)
            backlog = await transition_store.outbox_backlog(conn, PARTITIONS)
    finally:
        await producer.stop()
    per_partition = Counter(item.partition for item in queued)
    assert {p: cursor.published for p, cursor in cursors.items()} == {0: 1, 1: 1}
    assert backlog == len(queued) - 2
    assert min(per_partition.values()) > 1
    assert len(await read_transitions(live_kafka, topics.transitions)) == 2
