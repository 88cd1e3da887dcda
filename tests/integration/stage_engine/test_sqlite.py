"""The embedded default: the whole engine on SQLite (as `make run` uses it)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
from stage_engine.app import create_app

from shared.clock import ManualClock
from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    days,
    event,
    produce,
    read_transitions,
    running_engine,
    settings_for,
    wait_until_drained,
)
from tests.waiting import eventually


async def test_the_engine_runs_on_embedded_sqlite(
    topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lifecycle.db'}"
    settings = settings_for(topics, kafka_bootstrap, url)
    clock = ManualClock(T0 + timedelta(hours=2))
    events = [
        event("a1", at=T0, type="page", name="Home", anonymous_id="anon-1"),
        *(
            event(
                f"s{n}",
                at=T0 + timedelta(minutes=n),
                type="identify",
                name=None,
                user_id=f"user-{n}",
            )
            for n in range(50)
        ),
    ]
    async with running_engine(settings, clock=clock) as engine:
        app = create_app(settings, registry=engine.metrics.registry, engine=engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://se") as client:
            await produce(kafka_bootstrap, topics.events, events)
            await wait_until_drained(kafka_bootstrap, settings)
            merge = event(
                "i1",
                at=T0 + timedelta(hours=1),
                type="identify",
                name=None,
                user_id="user-0",
                anonymous_id="anon-1",
            )
            await produce(kafka_bootstrap, topics.events, [merge])
            await wait_until_drained(kafka_bootstrap, settings)
            clock.set(T0 + days(8))  # onboarding over, silent, milestones 3 and 7

            async def stages() -> dict[str, int]:
                body = (await client.get("/v1/stages")).json()
                return dict(body["stages"])

            await eventually(stages, until=lambda got: got["silent"] == 50, what="all silent")
            user = (await client.get("/v1/users/anon-1")).json()
        published = await eventually(
            lambda: read_transitions(kafka_bootstrap, topics.transitions),
            until=lambda got: len(got) == 1 + 50 * 4,
            what="first_seen + 50 x (signup, milestone 3, silent, milestone 7)",
        )
    assert user["user_id"] == "user-0"
    assert user["stage"] == "silent"
    assert Counter(t["data"]["kind"] for t in published) == {
        "stage_changed": 1 + 50 * 2,
        "inactivity_milestone": 50 * 2,
    }
