"""Helpers for the tests that break the engine's database or topic under it: an
engine with its HTTP app, order events with known sums, a recreated topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from stage_engine.app import create_app
from stage_engine.main import start_engine
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings

from shared.events import Event
from shared.kafka.admin import ensure_topics
from tests.integration.stage_engine.support import BROKER_STEP_S, ENGINE_STOP_S, T0, event
from tests.waiting import eventually, within

REVENUE = 10.0


@dataclass
class Served:
    engine: Engine
    client: httpx.AsyncClient

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        answer = await self.client.get("/readyz")
        return answer.status_code, answer.json()

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        answer = await self.client.get("/healthz")
        return answer.status_code, answer.json()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.engine.metrics.registry.get_sample_value(name, labels or {})
        return float(value or 0.0)

    def metric_sum(self, name: str) -> float:
        """A counter's total over all its label values."""
        return sum(
            sample.value
            for family in self.engine.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name
        )


@asynccontextmanager
async def served_engine(settings: StageEngineSettings) -> AsyncIterator[Served]:
    """A started engine (migrate it first) and an HTTP client on its app; stopped after.
    The test asserts what it expects of `engine.failure`."""
    async with within(BROKER_STEP_S, "starting the engine"):
        engine = await start_engine(settings)
    app = create_app(settings, registry=engine.metrics.registry, engine=engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://se") as client:
            yield Served(engine, client)
    finally:
        async with within(ENGINE_STOP_S, "stopping the engine"):
            await engine.stop()


def orders(prefix: str, users: int, *, each: int) -> list[Event]:
    """`each` orders of REVENUE per user, message ids unique under `prefix`."""
    return [
        event(
            f"{prefix}-{user}-{n}",
            at=T0 + timedelta(minutes=n),
            name="Order Completed",
            user_id=f"{prefix}-user-{user}",
            properties={"revenue": REVENUE},
        )
        for n in range(each)
        for user in range(users)
    ]


async def recreate_topic(bootstrap: str, name: str, *, partitions: int) -> None:
    """Delete `name`, wait until the broker no longer lists it, create it again empty."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-recreate")
    await admin.start()
    try:
        async with within(BROKER_STEP_S, f"deleting {name}"):
            await admin.delete_topics([name])

            async def listed() -> bool:
                return name in set(await admin.list_topics())

            await eventually(listed, until=lambda present: not present, what=f"{name} deleted")
    finally:
        await admin.close()
    async with within(BROKER_STEP_S, f"creating {name} again"):
        await ensure_topics(bootstrap, [name], partitions=partitions)
