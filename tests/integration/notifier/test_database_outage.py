"""The notifier's database goes away: its loops back off and restart (never a process
exit), it reports not ready, and once the database is back every transition sent
meanwhile is planned exactly once (issue 14)."""

from __future__ import annotations

from notifier.devsink import DevSink

from shared.topics import Topics
from tests.integration.notifier.harness import (
    SMS_ON_SILENT,
    count_actions,
    playbook,
    produce,
    running_notifier,
    settings,
    transition,
)
from tests.private_postgres import private_postgres
from tests.waiting import eventually

SMS = SMS_ON_SILENT


async def test_a_database_outage_pauses_the_loops_and_loses_nothing(
    live_kafka: str, topics: Topics, http_sink: DevSink
) -> None:
    with private_postgres() as pg:
        config = settings(
            topics,
            pg.url(),
            live_kafka,
            sink_url=http_sink.url,
            db_statement_timeout_seconds=1.0,
            db_connect_timeout_seconds=1.0,
            db_pool_timeout_seconds=1.0,
        )
        async with running_notifier(config, playbook(SMS)) as service:
            await produce(live_kafka, topics.transitions, [transition("before")])
            await eventually(lambda: count_actions(service), until=lambda n: n == 1)
            assert await service.loops_running()

            pg.stop()
            during = [transition(f"during-{n}") for n in range(20)]
            await produce(live_kafka, topics.transitions, during)

            async def restarts() -> float:
                return float(
                    service.metrics.registry.get_sample_value(
                        "notifier_loop_restarts_total",
                        {"loop": "consumer", "reason": "ConnectionRefusedError"},
                    )
                    or 0.0
                )

            await eventually(restarts, until=lambda n: n >= 1, what="the consumer restarted")
            assert not await service.loops_running()
            assert service.fatal is None

            pg.start()
            await eventually(
                lambda: count_actions(service),
                until=lambda n: n == 1 + len(during),
                timeout_s=90,
                what="every transition planned once the database is back",
            )
            await eventually(service.loops_running, timeout_s=60, what="ready again")
            assert await count_actions(service) == 1 + len(during)
