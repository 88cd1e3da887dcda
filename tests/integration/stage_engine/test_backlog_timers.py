"""Wall clock after an outage: no timer fires for users whose events wait in the backlog.

Users sign up at T0; the engine stops; each user is active again at T0 + 2 days, while
no engine runs; the engine comes back at T0 + 20 days with those events still to read.
Their 3-day inactivity milestone must count from T0 + 2 days (fired at T0 + 5 days),
never from T0: the timers of a lagging partition run at the received time of the
newest event it applied (stage_engine/timers.py, TimerTime).
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
    running_engine,
    settings_for,
    wait_until_drained,
)
from tests.waiting import eventually

USERS = 300
FILLER = 3000  # other users' events ahead of theirs: the backlog takes many batches


async def test_timers_wait_for_the_backlog_after_an_outage(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url, stage_batch_max_records=50)
    clock = ManualClock(T0 + timedelta(hours=1))
    signups = [
        event(f"s{n}", at=T0, type="identify", name=None, user_id=f"user-{n}") for n in range(USERS)
    ]
    async with running_engine(settings, clock=clock):
        await produce(kafka_bootstrap, topics.events, signups)
        await wait_until_drained(kafka_bootstrap, settings)

    back = T0 + days(2)
    filler = [event(f"f{n}", at=back, user_id=f"filler-{n}") for n in range(FILLER)]
    active = [event(f"a{n}", at=back, user_id=f"user-{n}") for n in range(USERS)]
    await produce(kafka_bootstrap, topics.events, filler + active)
    clock.set(T0 + days(20))
    async with running_engine(settings, clock=clock) as engine:
        await wait_until_drained(kafka_bootstrap, settings)
        await _all_fired(fresh_database_url, clock.now())
        assert engine.failure is None

    published = await read_transitions(kafka_bootstrap, topics.transitions)
    first_milestones = {
        t["subject"]: t["time"]
        for t in published
        if t["data"]["kind"] == "inactivity_milestone"
        and t["data"]["milestone_days"] == 3
        and t["subject"].startswith("user-")
    }
    assert len(first_milestones) == USERS
    too_early = {user: at for user, at in first_milestones.items() if _at(at) != back + days(3)}
    assert too_early == {}, "a milestone counted from before the backlog's events"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _all_fired(database_url: str, now: datetime) -> None:
    async def backlog() -> tuple[int, int]:
        return await due_rows(database_url, now), await outbox_size(database_url)

    await eventually(backlog, until=lambda b: b == (0, 0), what="every due timer fired")
