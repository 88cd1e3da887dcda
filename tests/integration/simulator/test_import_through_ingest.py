"""`lifecycle import` against the real ingest service and the real broker.

The importer runs as a child process, is interrupted half-way (Ctrl-C, then
kill -9), and resumed; the topic is read back to check that every row arrived,
in event-time order per user, and what a resume sends again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import TopicPartition
from simulator.importer.checkpoint import checkpoint_path, load_checkpoint

from shared.codec import decode
from shared.events import Event
from shared.kafka.consumer import make_consumer
from shared.topics import Topics
from tests.integration.simulator.processes import finished, lifecycle_command, running_ingest
from tests.waiting import eventually

WRITE_KEY = "history-key"
ROWS = 600
BATCH = 50
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def write_history(tmp_path: Path) -> Path:
    """ROWS valid rows in shuffled time order, plus two bad rows (lines 5 and 9)."""
    rng = random.Random(4)
    rows = []
    for i in range(ROWS):
        at = T0 + timedelta(minutes=rng.randrange(60 * 24 * 30))
        props = orjson.dumps({"revenue": i}).decode().replace('"', '""')
        rows.append(f'u{i % 40},Order Completed,{at.isoformat()},"{props}"')
    rows.insert(3, "u1,Order Completed,not-a-time,")
    rows.insert(7, ",Order Completed,2024-06-02T00:00:00Z,")
    path = tmp_path / "history.csv"
    path.write_text("user_id,event,timestamp,properties\n" + "\n".join(rows) + "\n")
    return path


async def topic_events(bootstrap: str, topic: str) -> list[Event]:
    """Everything on the topic: the end offsets say how many records there are."""
    consumer = make_consumer(bootstrap, group_id=None, client_id="import-test")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[Event] = []
        while len(events) < sum(ends.values()):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"topic reading stalled at {len(events)} of {sum(ends.values())}"
            for records in batch.values():
                events.extend(decode(Event, record.value) for record in records)
        return events
    finally:
        await consumer.stop()


async def acknowledged(path: Path) -> int:
    stored = load_checkpoint(checkpoint_path(path))
    return stored.acknowledged if stored else 0


def check_order_per_user(events: list[Event]) -> None:
    by_user: dict[str, list[datetime]] = {}
    for event in events:
        by_user.setdefault(event.user_id or "", []).append(event.timestamp)
    for user, times in by_user.items():
        assert times == sorted(times), f"{user}'s events are not in event-time order"


def _import_args(path: Path, url: str) -> tuple[str, ...]:
    return (
        "import",
        str(path),
        "--write-key",
        WRITE_KEY,
        "--ingest-url",
        url,
        "--batch-size",
        str(BATCH),
    )


async def _interrupted_after_two_batches(
    args: tuple[str, ...], path: Path, stop: signal.Signals
) -> subprocess.Popen[bytes]:
    """Start a slowed-down import and send it `stop` once two batches are acknowledged."""
    first = lifecycle_command(*args, "--max-events-per-second", "400", env={})
    await eventually(
        lambda: acknowledged(path),
        until=lambda n: n >= 2 * BATCH,
        timeout_s=60,
        what="two batches acknowledged",
    )
    os.killpg(first.pid, stop)
    return first


async def test_an_interrupted_import_resumes_without_resending(
    tmp_path: Path, live_kafka: str, topics: Topics
) -> None:
    path = write_history(tmp_path)
    async with running_ingest(
        tmp_path, kafka=live_kafka, events_topic=topics.events, write_key=WRITE_KEY
    ) as url:
        args = _import_args(path, url)
        first = await _interrupted_after_two_batches(args, path, signal.SIGINT)
        code, out, err = await finished(first, timeout_s=60)
        assert code == 130, (out, err)
        assert "resume" in out
        assert f"{path}:5: skipped: timestamp" in err
        assert f"{path}:9: skipped: user_id" in err
        stopped_at = await acknowledged(path)
        assert 2 * BATCH <= stopped_at < ROWS

        code, out, err = await finished(lifecycle_command(*args, env={}), timeout_s=120)
        assert code == 0, (out, err)
        assert f"{ROWS} of {ROWS} events delivered" in out
        assert f"{stopped_at} by earlier runs" in out

        code, out, _ = await finished(lifecycle_command(*args, env={}), timeout_s=60)
        assert code == 0
        assert "already imported" in out

    events = await topic_events(live_kafka, topics.events)
    ids = Counter(event.message_id for event in events)
    assert len(ids) == ROWS
    assert max(ids.values()) == 1, "a resumed import sent events again"
    assert {event.source for event in events} == {"history"}
    check_order_per_user(events)


async def test_a_kill_9_resends_at_most_the_batch_in_flight_with_the_same_ids(
    tmp_path: Path, live_kafka: str, topics: Topics
) -> None:
    path = write_history(tmp_path)
    async with running_ingest(
        tmp_path, kafka=live_kafka, events_topic=topics.events, write_key=WRITE_KEY
    ) as url:
        args = _import_args(path, url)
        first = await _interrupted_after_two_batches(args, path, signal.SIGKILL)
        await finished(first, timeout_s=30)
        code, out, err = await finished(lifecycle_command(*args, env={}), timeout_s=120)
        assert code == 0, (out, err)

    events = await topic_events(live_kafka, topics.events)
    ids = Counter(event.message_id for event in events)
    assert len(ids) == ROWS, "rows missing after kill -9 and resume"
    assert max(ids.values()) <= 2
    assert sum(ids.values()) - ROWS <= BATCH, "more than the batch in flight was sent again"
