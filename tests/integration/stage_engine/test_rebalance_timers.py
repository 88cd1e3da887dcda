"""Two engines in one group, rebalancing while timers fire: every timer fires once."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from stage_engine.main import migrate_database, start_engine
from stage_engine.runtime import Engine

from shared.clock import ManualClock
from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    days,
    due_rows,
    event,
    outbox_size,
    produce,
    read_transitions,
    settings_for,
    wait_until_drained,
)
from tests.waiting import eventually

USERS = 1500


async def test_two_engines_with_rebalances_fire_every_timer_exactly_once(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    # Small timer rounds, so firing takes many rounds and rebalances land among them.
    settings = settings_for(
        topics,
        kafka_bootstrap,
        fresh_database_url,
        stage_timer_batch_size=10,
        stage_timer_interval_ms=20,
    )
    clock = ManualClock(T0 + timedelta(hours=1))
    signups = [
        event(
            f"s{n}",
            at=T0 + timedelta(seconds=n % 600),
            type="identify",
            name=None,
            user_id=f"user-{n}",
        )
        for n in range(USERS)
    ]
    await migrate_database(settings)
    first = await start_engine(settings, clock=clock)
    second = None
    try:
        await produce(kafka_bootstrap, topics.events, signups)
        await wait_until_drained(kafka_bootstrap, settings)

        # Round 1: onboarding ends, milestones 3 and 7; the second engine joins meanwhile.
        clock.set(T0 + days(10))
        second = await start_engine(settings, clock=clock)
        await _all_fired(fresh_database_url, clock.now())
        assert second.ownership.partitions or first.ownership.partitions

        # Round 2: milestones 14 and 30, churn; the first engine leaves meanwhile.
        clock.set(T0 + days(40))
        await first.stop()
        await _all_fired(fresh_database_url, clock.now())
        assert second.ownership.partitions == {0, 1, 2}
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
    assert first.failure is None
    assert second is not None
    assert second.failure is None

    fired = _fired(first) + _fired(second)
    assert fired == 2 * USERS, "each user row fires once per round, by one engine"
    assert _fired(second) > 0

    published = await read_transitions(kafka_bootstrap, topics.transitions)
    ids = Counter(t["id"] for t in published)
    assert [i for i, n in ids.items() if n > 1] == []
    per_user = Counter(t["subject"] for t in published)
    assert set(per_user.values()) == {7}, "signup, new->silent, churn, milestones 3/7/14/30"
    kinds = Counter(
        (t["data"]["kind"], t["data"].get("milestone_days"), t["data"]["to_stage"])
        for t in published
    )
    assert kinds == {
        ("stage_changed", None, "new"): USERS,
        ("stage_changed", None, "silent"): USERS,
        ("stage_changed", None, "churned"): USERS,
        ("inactivity_milestone", 3, "new"): USERS,
        ("inactivity_milestone", 7, "silent"): USERS,
        ("inactivity_milestone", 14, "silent"): USERS,
        ("inactivity_milestone", 30, "churned"): USERS,
    }


def _fired(engine: Engine) -> float:
    value = engine.metrics.registry.get_sample_value("stage_engine_timers_fired_total")
    return float(value or 0.0)


async def _all_fired(database_url: str, now: datetime) -> None:
    async def backlog() -> tuple[int, int]:
        return await due_rows(database_url, now), await outbox_size(database_url)

    await eventually(
        backlog, until=lambda got: got == (0, 0), timeout_s=90, what="every due timer fired"
    )
