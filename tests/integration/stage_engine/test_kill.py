"""kill -9 of the engine at random moments during a stream of 50,000 events, restarted
each time: the final states equal an uninterrupted run's, and the transitions topic
holds every transition of that run, none twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
from stage_engine.main import migrate_database

from shared.events import Event
from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    consumed_offsets,
    days,
    due_rows,
    event,
    extra_database,
    extra_topic,
    outbox_size,
    produce,
    read_transitions,
    running_engine,
    settings_for,
    spawn_engine,
    stored_states,
    wait_until_drained,
)
from tests.ports import free_port
from tests.waiting import eventually

EVENTS = 50_000
USERS = 2_000
KILLS = 4
CHUNK = 2_500
SPAN = days(8)
# After the stream, every partition's event clock moves on 10 days: the timer loop fires
# the milestones, onboarding ends and silences of everyone.
TICK = T0 + SPAN + days(10)
LATENESS_S = 60.0
FINAL = TICK - timedelta(seconds=LATENESS_S)


def _stream(seed: int) -> Iterator[Event]:
    """Events in time order: signups, page views, orders, complaints of USERS users."""
    rng = random.Random(seed)
    signed_up: set[int] = set()
    step = SPAN / EVENTS
    for n in range(EVENTS):
        person = rng.randrange(USERS)
        at = T0 + step * n
        user = f"user-{person}"
        if person not in signed_up:
            signed_up.add(person)
            yield event(
                f"e{n}",
                at=at,
                type="identify",
                name=None,
                user_id=user,
                traits={"email": f"{user}@x.io"},
            )
        elif rng.random() < 0.1:
            yield event(
                f"e{n}",
                at=at,
                name="Order Completed",
                user_id=user,
                properties={"revenue": rng.choice([5.0, 25.0, 80.0, 300.0])},
            )
        elif rng.random() < 0.02:
            yield event(f"e{n}", at=at, name="Complaint Filed", user_id=user)
        else:
            yield event(f"e{n}", at=at, type="page", name="Home", user_id=user)


async def _produce_stream(bootstrap: str, topic: str) -> None:
    events = list(_stream(seed=11))
    for start in range(0, len(events), CHUNK):
        await produce(bootstrap, topic, events[start : start + CHUNK])
    for partition in range(3):  # every partition's event clock ends at TICK
        tick = event(
            f"tick-{partition}",
            at=TICK,
            type="page",
            name="Tick",
            anonymous_id=f"ticker-{partition}",
        )
        await produce(bootstrap, topic, [tick], partition=partition)


async def test_kill_9_during_a_stream_changes_nothing(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(
        topics,
        kafka_bootstrap,
        fresh_database_url,
        stage_clock="event",
        stage_allowed_lateness_seconds=LATENESS_S,
        stage_engine_port=free_port(),
        stage_batch_max_records=500,
        stage_session_timeout_ms=6000,
        log_level="WARNING",
    )
    log_path = tmp_path / "engine.log"
    rng = random.Random(5)
    await migrate_database(settings)  # the child migrates too; the probes below read tables
    stream = asyncio.create_task(_produce_stream(kafka_bootstrap, topics.events))
    kills = 0
    child = spawn_engine(settings, log_path)
    try:
        while kills < KILLS:
            # Wait until this incarnation has applied something, then kill it mid-flight.
            await _applied_more(fresh_database_url, topics.events, kills + 1)
            await asyncio.sleep(rng.uniform(0.0, 1.5))  # a random moment, not a sync point
            assert child.poll() is None, log_path.read_text()[-3000:]
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            kills += 1
            child = spawn_engine(settings, log_path)
        await stream
        await wait_until_drained(kafka_bootstrap, settings, timeout_s=120)
        await _settled(fresh_database_url)
        assert child.poll() is None, log_path.read_text()[-3000:]
        # The last incarnation serves its HTTP API like any other.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.stage_engine_port}"
        ) as http:
            # It may have found nothing left to apply: wait for it to serve, then ask.
            ready = await eventually(
                lambda: _readyz(http),
                until=lambda status: status == 200,
                timeout_s=60,
                what="the last incarnation's /readyz",
            )
            assert ready == 200
            stages = (await http.get("/v1/stages")).json()
        assert stages["total"] == USERS + 3
    finally:
        stream.cancel()
        _stop(child)
    killed_states = await stored_states(fresh_database_url)
    killed_transitions = await read_transitions(kafka_bootstrap, topics.transitions)

    async with (
        extra_database(fresh_database_url) as reference_url,
        extra_topic(kafka_bootstrap, f"{topics.transitions}.reference") as reference_topic,
    ):
        reference = settings_for(
            topics,
            kafka_bootstrap,
            reference_url,
            stage_clock="event",
            stage_allowed_lateness_seconds=LATENESS_S,
            topic_transitions=reference_topic,
            stage_engine_group=f"{topics.events}.reference",
        )
        async with running_engine(reference):
            await wait_until_drained(kafka_bootstrap, reference, timeout_s=120)
            await _settled(reference_url)
        reference_states = await stored_states(reference_url)
        reference_transitions = await read_transitions(kafka_bootstrap, reference_topic)

    assert kills == KILLS
    assert len(reference_states) == USERS + 3
    assert killed_states == reference_states
    killed_ids = Counter(t["id"] for t in killed_transitions)
    assert [i for i, n in killed_ids.items() if n > 1] == [], "a transition published twice"
    assert set(killed_ids) == {t["id"] for t in reference_transitions}


async def _applied_more(database_url: str, topic: str, incarnation: int) -> None:
    async def progress() -> int:
        return sum((await consumed_offsets(database_url, topic)).values())

    before = await progress()
    await eventually(
        progress,
        until=lambda now: now > before,
        timeout_s=60,
        what=f"progress of engine incarnation {incarnation}",
    )


async def _settled(database_url: str) -> None:
    async def backlog() -> tuple[int, int]:
        return await due_rows(database_url, FINAL), await outbox_size(database_url)

    await eventually(
        backlog, until=lambda got: got == (0, 0), timeout_s=60, interval_s=0.2, what="settled"
    )


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


async def _readyz(http: httpx.AsyncClient) -> int | None:
    try:
        return (await http.get("/readyz")).status_code
    except httpx.TransportError:  # not listening yet
        return None
