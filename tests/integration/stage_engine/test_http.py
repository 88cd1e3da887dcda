"""The HTTP API on a running engine: profiles (with merges), transitions, stages, ops."""

from __future__ import annotations

from datetime import timedelta

import httpx
from stage_engine.app import create_app

from shared.clock import ManualClock
from shared.topics import Topics
from tests.integration.stage_engine.support import (
    T0,
    event,
    produce,
    running_engine,
    settings_for,
    wait_until_drained,
)
from tests.waiting import eventually

H = timedelta(hours=1)


async def test_http_endpoints(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str
) -> None:
    settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
    clock = ManualClock(T0 + 6 * H)  # wall clock: nothing is due yet
    async with running_engine(settings, clock=clock) as engine:
        app = create_app(settings, registry=engine.metrics.registry, engine=engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://se")
        async with client:
            await produce(
                kafka_bootstrap,
                topics.events,
                [
                    event("a1", at=T0, type="page", name="Home", anonymous_id="anon-1"),
                    event("p1", at=T0, type="page", name="Home", anonymous_id="anon-2"),
                ],
            )

            async def anonymous_known() -> int:
                return (await client.get("/v1/users/anon-1")).status_code

            await eventually(anonymous_known, until=lambda code: code == 200, what="anon-1")
            await produce(
                kafka_bootstrap,
                topics.events,
                [
                    event(
                        "u1",
                        at=T0 + H,
                        type="identify",
                        name=None,
                        user_id="user-1",
                        anonymous_id="anon-1",
                        traits={"email": "u1@example.com", "ssn": "x"},
                    ),
                    event(
                        "u2",
                        at=T0 + 2 * H,
                        name="Order Completed",
                        user_id="user-1",
                        properties={"revenue": 40.0},
                    ),
                    event(
                        "u3",
                        at=T0 + 3 * H,
                        name="Order Completed",
                        user_id="user-1",
                        properties={"total": 20.0},
                    ),
                ],
            )
            await wait_until_drained(kafka_bootstrap, settings)

            user = (await client.get("/v1/users/user-1")).json()
            assert user["user_id"] == "user-1"
            assert user["stage"] == "new"
            assert user["orders"] == 2
            assert user["revenue"] == 60.0
            assert user["average_order_value"] == 30.0
            assert user["purchase_level"] == "repeat"
            assert user["first_seen_at"] == "2025-03-03T09:00:00Z"  # the anonymous visit
            assert user["signed_up_at"] == "2025-03-03T10:00:00Z"
            assert user["last_order_at"] == "2025-03-03T12:00:00Z"
            assert user["traits"] == {"email": "u1@example.com"}  # allow-listed only
            assert user["rfm"]["segment"]
            assert user["next_due_at"] is not None
            # The merged anonymous id answers with its user.
            assert (await client.get("/v1/users/anon-1")).json()["user_id"] == "user-1"

            missing = await client.get("/v1/users/nobody")
            assert missing.status_code == 404
            assert missing.json() == {
                "error": "unknown_user",
                "detail": "no profile for user id 'nobody'",
            }
            assert (await client.get("/v1/users/nobody/transitions")).status_code == 404

            history = (await client.get("/v1/users/user-1/transitions")).json()
            assert history["user_id"] == "user-1"
            summary = [
                (t["subject"], t["data"]["kind"], t["data"]["to_stage"])
                for t in history["transitions"]
            ]
            assert summary == [
                ("anon-1", "stage_changed", "prospect"),  # moved with the merge
                ("user-1", "stage_changed", "new"),
                ("user-1", "purchase_level_changed", "new"),
                ("user-1", "purchase_level_changed", "new"),
            ]
            limited = (await client.get("/v1/users/user-1/transitions?limit=1")).json()
            assert [t["data"]["purchase_level"] for t in limited["transitions"]] == ["repeat"]
            assert (await client.get("/v1/users/user-1/transitions?limit=0")).status_code == 422

            stages = (await client.get("/v1/stages")).json()
            assert stages == {
                "stages": {"prospect": 1, "new": 1, "active": 0, "silent": 0, "churned": 0},
                "total": 2,
            }

            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text

            async def metrics() -> str:
                return (await client.get("/metrics")).text

            text = await eventually(
                metrics,
                until=lambda body: 'stage_engine_users{stage="new"} 1.0' in body,
                what="users-per-stage gauge",
            )
            assert 'stage_engine_events_total{outcome="applied"} 5.0' in text
            assert 'stage_engine_transitions_total{kind="stage_changed",to_stage="new"} 1.0' in text
            for name in (
                "stage_engine_batch_size_bucket",
                "stage_engine_batch_duration_seconds_bucket",
                'stage_engine_consumer_lag{partition="0"}',
                "stage_engine_timers_fired_total",
                "stage_engine_due_backlog",
                "stage_engine_outbox_backlog",
            ):
                assert name in text, name
