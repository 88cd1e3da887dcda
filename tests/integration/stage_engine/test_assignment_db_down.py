"""Partitions assigned while the database refuses connections: aiokafka would swallow
the callback's error and leave them assigned but never taken (their records dropped
as "not owned", /readyz green). Instead they are paused, counted, shown in /readyz and
/healthz, and taken once the database answers: every event is applied, once."""

from __future__ import annotations

from aiokafka import TopicPartition
from stage_engine.main import migrate_database

from shared.topics import Topics
from tests.integration.stage_engine.faults_support import REVENUE, orders, served_engine
from tests.integration.stage_engine.support import (
    produce,
    settings_for,
    stored_states,
    wait_until_drained,
)
from tests.private_postgres import private_postgres
from tests.waiting import eventually

USERS = 30


async def test_partitions_not_taken_while_the_database_refuses_are_taken_when_it_answers(
    topics: Topics, kafka_bootstrap: str
) -> None:
    with private_postgres() as pg:
        settings = settings_for(
            topics,
            kafka_bootstrap,
            pg.url(),
            db_connect_timeout_seconds=2,
            db_statement_timeout_seconds=2,
            db_pool_timeout_seconds=2,
            stage_loop_healthy_after_seconds=1,
        )
        await migrate_database(settings)
        before = orders("before", USERS, each=2)
        await produce(kafka_bootstrap, topics.events, before)
        pg.stop()  # connections refused from now on

        async with served_engine(settings) as served:
            engine = served.engine
            everything = {TopicPartition(topics.events, p) for p in range(3)}

            async def not_taken() -> frozenset[int]:
                return engine.ownership.not_taken

            await eventually(not_taken, until=lambda p: p == {0, 1, 2}, what="assignment failed")
            assert engine.ownership.partitions == frozenset(), "nothing owned, nothing read"
            assert engine.consumer.paused() == everything, "their records are not fetched"
            assert served.metric_sum("stage_engine_assignment_failures_total") >= 1
            assert served.metric("stage_engine_partitions_not_taken") == 3
            status, body = await served.readyz()
            assert status == 503
            assert body["checks"]["engine"] is False
            status, body = await served.healthz()
            assert status == 200, "restarting the process would not bring the database back"
            assert body["partitions_not_taken"] == [0, 1, 2]

            during = orders("during", USERS, each=1)
            await produce(kafka_bootstrap, topics.events, during)
            pg.start()

            await wait_until_drained(kafka_bootstrap, settings, timeout_s=90)
            assert engine.ownership.partitions == {0, 1, 2}
            assert engine.ownership.not_taken == frozenset()
            assert served.metric("stage_engine_partitions_not_taken") == 0

            async def readiness() -> int:
                return (await served.readyz())[0]

            await eventually(readiness, until=lambda code: code == 200, what="ready again")
            applied = served.metric("stage_engine_events_total", {"outcome": "applied"})
            assert applied == len(before) + len(during)
        assert engine.failure is None

        states = await stored_states(pg.url())
        for user in range(USERS):
            assert states[f"before-user-{user}"]["orders"] == 2
            assert states[f"before-user-{user}"]["revenue"] == 2 * REVENUE
            assert states[f"during-user-{user}"]["orders"] == 1
