"""A scripted journey in event mode gives exactly the expected transitions, at event times."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    days,
    event,
    produce,
    read_transitions,
    running_engine,
    settings_for,
)
from tests.waiting import eventually

H = timedelta(hours=1)


Summary = tuple[str, str, str, str | None, str, object, str]


def _summary(transition: dict[str, Any]) -> Summary:
    data = transition["data"]
    detail = data.get("milestone_days") or data.get("purchase_level") or data.get("flag")
    return (
        transition["subject"],
        data["kind"],
        data["reason"],
        data.get("from_stage"),
        data["to_stage"],
        detail,
        transition["time"],
    )


def _at(delta: timedelta) -> str:
    return (T0 + delta).isoformat().replace("+00:00", "Z")


async def test_scripted_journey_in_event_mode(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(
        topics,
        kafka_bootstrap,
        fresh_database_url,
        stage_clock="event",
        stage_allowed_lateness_seconds=60,
    )
    # The anonymous visitor's events live in partition 1, the user's in partition 0:
    # the identify merges across partitions.
    anonymous = [
        event("a1", at=T0, type="page", name="Home", anonymous_id="anon-1"),
        event("a2", at=T0 + H, name="Viewed Product", anonymous_id="anon-1"),
    ]
    user = [
        event(
            "u1",
            at=T0 + 2 * H,
            type="identify",
            user_id="user-1",
            anonymous_id="anon-1",
            name=None,
            traits={"email": "u1@example.com"},
        ),
        event(
            "u2",
            at=T0 + 3 * H,
            name="Order Completed",
            user_id="user-1",
            properties={"revenue": 30.0},
        ),
        event("u3", at=T0 + days(40), type="page", name="Home", user_id="user-1"),
    ]
    # A ticker in partition 0 moves that partition's watermark, day by day.
    ticks = [
        event(f"tick-{n}", at=T0 + days(n) + H, type="page", name="Tick", anonymous_id="ticker")
        for n in range(1, 43)
    ]

    async def journey() -> list[Summary]:
        published = await read_transitions(kafka_bootstrap, topics.transitions)
        return [_summary(t) for t in published if t["subject"] in ("anon-1", "user-1")]

    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.events, anonymous, partition=1)
        # Partitions are not ordered with each other: the visit is applied before the
        # identify is sent, as it would be with any real delay between them.
        await eventually(journey, timeout_s=30, what="the anonymous visit applied")
        await produce(kafka_bootstrap, topics.events, [user[0], user[1]], partition=0)
        await produce(kafka_bootstrap, topics.events, ticks[:39], partition=0)
        await produce(kafka_bootstrap, topics.events, [user[2]], partition=0)
        await produce(kafka_bootstrap, topics.events, ticks[39:], partition=0)

        expected = [
            ("anon-1", "stage_changed", "first_seen", None, "prospect", None, _at(timedelta())),
            ("user-1", "stage_changed", "signup", "prospect", "new", None, _at(2 * H)),
            (
                "user-1",
                "purchase_level_changed",
                "purchase",
                None,
                "new",
                "first_purchase",
                _at(3 * H),
            ),
            ("user-1", "inactivity_milestone", "inactivity", None, "new", 3, _at(3 * H + days(3))),
            (
                "user-1",
                "stage_changed",
                "onboarding_complete",
                "new",
                "active",
                None,
                _at(2 * H + days(7)),
            ),
            (
                "user-1",
                "stage_changed",
                "inactivity",
                "active",
                "silent",
                None,
                _at(3 * H + days(7)),
            ),
            (
                "user-1",
                "inactivity_milestone",
                "inactivity",
                None,
                "silent",
                7,
                _at(3 * H + days(7)),
            ),
            (
                "user-1",
                "inactivity_milestone",
                "inactivity",
                None,
                "silent",
                14,
                _at(3 * H + days(14)),
            ),
            ("user-1", "stage_changed", "churn", "silent", "churned", None, _at(3 * H + days(30))),
            (
                "user-1",
                "inactivity_milestone",
                "inactivity",
                None,
                "churned",
                30,
                _at(3 * H + days(30)),
            ),
            ("user-1", "stage_changed", "reactivated", "churned", "active", None, _at(days(40))),
        ]

        got = await eventually(
            journey,
            until=lambda got: len(got) >= len(expected),
            timeout_s=60,
            what="the journey's transitions",
        )
    assert got == expected
