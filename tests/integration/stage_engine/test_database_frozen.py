"""A PostgreSQL that stops answering (SIGSTOP of the server and its backends: connections
stay open, nothing comes back, as in a silent network partition). Within the
statement and connect timeouts the engine reports not ready and counts the faults,
instead of hanging with its partitions while /healthz answers 200 and nothing says
why; once the server answers again it applies the events sent meanwhile, once each."""

from __future__ import annotations

import time

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

USERS = 40
STATEMENT_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 1.0
# The client's deadline is the statement timeout plus shared.db.STATEMENT_GRACE_S (5 s);
# a fault may take two deadlines to surface (the statement, then the rollback or ping).
NOTICED_WITHIN_S = 20.0


async def test_a_frozen_database_makes_the_engine_not_ready_then_it_resumes_exactly_once(
    topics: Topics, kafka_bootstrap: str
) -> None:
    with private_postgres() as pg:
        settings = settings_for(
            topics,
            kafka_bootstrap,
            pg.url(),
            db_statement_timeout_seconds=STATEMENT_TIMEOUT_S,
            db_connect_timeout_seconds=CONNECT_TIMEOUT_S,
            db_pool_timeout_seconds=CONNECT_TIMEOUT_S,
            stage_loop_healthy_after_seconds=2,
        )
        await migrate_database(settings)
        async with served_engine(settings) as served:

            async def readiness() -> int:
                return (await served.readyz())[0]

            before = orders("before", USERS, each=1)
            await produce(kafka_bootstrap, topics.events, before)
            await wait_until_drained(kafka_bootstrap, settings)
            await eventually(readiness, until=lambda code: code == 200, what="ready")
            restarts_before = served.metric_sum("stage_engine_loop_restarts_total")
            assert restarts_before == 0

            pg.freeze()
            try:
                frozen_at = time.monotonic()
                during = orders("during", USERS, each=2)
                await produce(kafka_bootstrap, topics.events, during)

                async def poll_loop_faults() -> float:
                    # the consumer's own loop, which holds the partitions, does not hang
                    return sum(
                        served.metric(
                            "stage_engine_loop_restarts_total", {"loop": "poll", "reason": reason}
                        )
                        for reason in ("TimeoutError", "QueryCanceledError")
                    )

                await eventually(
                    poll_loop_faults,
                    until=lambda n: n > 0,
                    timeout_s=NOTICED_WITHIN_S,
                    what="the poll loop's fault counted",
                )
                status, body = await served.readyz()
                assert status == 503, body
                assert body["checks"]["database"] is False
                assert body["checks"]["engine"] is False
                assert time.monotonic() - frozen_at < NOTICED_WITHIN_S
                # /healthz does not touch the database: it answers, and names the loops
                status, body = await served.healthz()
                assert status == 200
                loop_states = {loop["state"] for loop in body["loops"].values()}
                assert loop_states & {"backing off", "recovering"}, body
            finally:
                pg.thaw()

            await wait_until_drained(kafka_bootstrap, settings, timeout_s=120)
            await eventually(
                readiness, until=lambda code: code == 200, timeout_s=60, what="ready again"
            )
            assert served.engine.failure is None

        states = await stored_states(pg.url())
        for user in range(USERS):
            assert states[f"before-user-{user}"]["orders"] == 1
            assert states[f"during-user-{user}"]["orders"] == 2, "each event applied once"
            assert states[f"during-user-{user}"]["revenue"] == 2 * REVENUE
