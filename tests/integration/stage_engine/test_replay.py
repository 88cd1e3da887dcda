"""Replaying the events topic from the start into an empty database, in event mode,
gives the same states (and the same transitions) as the live run in wall mode.

The live run lives through 45 days on a manual wall clock, a few days at a time:
each step's events are produced (in time order per partition), applied, then the
clock moves to the step's end and the timer loop fires what fell due. One person's
anonymous and identified events share a partition here: Kafka orders nothing across
partitions, so a merge racing an anonymous event in another partition may resolve
differently in a replay (tested for itself in test_journey).
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from shared.clock import ManualClock
from shared.events import Event
from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
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
    stored_states,
    wait_until_drained,
)
from tests.waiting import eventually

PEOPLE = 120
DAYS = 45
STEP_DAYS = 3
PARTITIONS = 3
TICK = T0 + days(DAYS + 5)
LATENESS_S = 60.0
# Where the replay's watermarks end: the wall clock of the live run stops there too.
FINAL = TICK - timedelta(seconds=LATENESS_S)


def _partition(person: int) -> int:
    return zlib.crc32(f"p{person}".encode()) % PARTITIONS


def _history(seed: int) -> list[tuple[int, Event]]:
    """(partition, event) for every person: anonymous visits, signup, orders, silence."""
    rng = random.Random(seed)
    out: list[tuple[int, Event]] = []
    for person in range(PEOPLE):
        part = _partition(person)
        anon, user = f"anon-{person}", f"user-{person}"
        start = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        moments = sorted(
            start + timedelta(minutes=rng.randrange(0, DAYS * 24 * 60))
            for _ in range(rng.randrange(2, 14))
        )
        signup_at = moments[len(moments) // 3] if rng.random() < 0.8 else None
        for n, at in enumerate([start, *moments]):
            mid = f"{person}-{n}"
            if signup_at is None or at < signup_at:
                out.append((part, event(mid, at=at, type="page", name="Home", anonymous_id=anon)))
            elif at == signup_at:
                out.append(
                    (
                        part,
                        event(
                            mid,
                            at=at,
                            type="identify",
                            name=None,
                            user_id=user,
                            anonymous_id=anon,
                            traits={"email": f"{user}@x.io"},
                        ),
                    )
                )
            elif rng.random() < 0.3:
                out.append(
                    (
                        part,
                        event(
                            mid,
                            at=at,
                            name="Order Completed",
                            user_id=user,
                            properties={"revenue": rng.choice([9.0, 30.0, 120.0])},
                        ),
                    )
                )
            elif rng.random() < 0.05:
                out.append((part, event(mid, at=at, name="Complaint Filed", user_id=user)))
            else:
                out.append((part, event(mid, at=at, name="Viewed Product", user_id=user)))
            if rng.random() < 0.05:  # a client retry: the same messageId again
                out.append(out[-1])
    # A ticker per partition, after everyone's last event, ends the history at the
    # same moment in every partition (and so the event clocks at the same watermark).
    out.extend(
        (p, event(f"end-{p}", at=TICK, type="page", name="Tick", anonymous_id=f"ticker-{p}"))
        for p in range(PARTITIONS)
    )
    return sorted(out, key=lambda item: (item[1].timestamp, item[1].message_id))


async def test_event_mode_replay_equals_the_live_run(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    history = _history(seed=7)
    live = settings_for(topics, kafka_bootstrap, fresh_database_url)
    clock = ManualClock(T0)
    async with running_engine(live, clock=clock):
        moment = T0
        while moment <= TICK:
            step_end = moment + days(STEP_DAYS)
            await _produce_between(kafka_bootstrap, topics.events, history, moment, step_end)
            await wait_until_drained(kafka_bootstrap, live)
            clock.set(min(step_end, FINAL))
            await _timers_done(fresh_database_url, clock.now())
            moment = step_end
    live_states = await stored_states(fresh_database_url)
    live_transitions = await read_transitions(kafka_bootstrap, topics.transitions)

    async with (
        extra_database(fresh_database_url) as replay_url,
        extra_topic(kafka_bootstrap, f"{topics.transitions}.replay") as replay_topic,
    ):
        replay = settings_for(
            topics,
            kafka_bootstrap,
            replay_url,
            stage_clock="event",
            stage_allowed_lateness_seconds=LATENESS_S,
            stage_engine_group=f"{topics.events}.replay",
            topic_transitions=replay_topic,
        )
        async with running_engine(replay):
            await wait_until_drained(kafka_bootstrap, replay)
            await eventually(
                lambda: _count(kafka_bootstrap, replay_topic),
                until=lambda got: got >= len(live_transitions),
                timeout_s=60,
                what="as many replayed transitions as live ones",
            )
            await _timers_done(replay_url, FINAL)
        replay_states = await stored_states(replay_url)
        replay_transitions = await read_transitions(kafka_bootstrap, replay_topic)

    assert len(live_states) > PEOPLE // 2
    assert Counter(s["stage"] for s in live_states.values())["churned"] > 0, "timers fired"
    # Same profiles, field by field (the wall run fired up to `final`, and so did replay).
    assert replay_states.keys() == live_states.keys()
    different = [k for k in live_states if live_states[k] != replay_states[k]]
    assert different == [], _first_difference(live_states, replay_states, different)
    live_ids = Counter(t["id"] for t in live_transitions)
    replay_ids = Counter(t["id"] for t in replay_transitions)
    assert live_ids == replay_ids, (live_ids - replay_ids, replay_ids - live_ids)


async def _count(bootstrap: str, topic: str) -> int:
    return len(await read_transitions(bootstrap, topic))


def _first_difference(
    live: dict[str, dict[str, Any]], replay: dict[str, dict[str, Any]], keys: list[str]
) -> str:
    key = keys[0]
    fields = {
        name: (live[key][name], replay[key].get(name))
        for name in live[key]
        if live[key][name] != replay[key].get(name)
    }
    return f"{len(keys)} profiles differ; {key}: (live, replay) {fields}"


async def _produce_between(
    bootstrap: str,
    topic: str,
    history: list[tuple[int, Event]],
    start: datetime,
    end: datetime,
) -> None:
    for part in range(PARTITIONS):
        batch = [e for p, e in history if p == part and start <= e.timestamp < end]
        await produce(bootstrap, topic, batch, partition=part)


async def _timers_done(database_url: str, now: datetime) -> None:
    async def backlog() -> tuple[int, int]:
        return await due_rows(database_url, now), await outbox_size(database_url)

    await eventually(backlog, until=lambda got: got == (0, 0), timeout_s=60, what="timers fired")
