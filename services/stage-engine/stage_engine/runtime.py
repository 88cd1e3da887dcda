"""A running engine: its clients, its loops, and what happens when one of them fails.

One supervisor (shared/supervisor.py) runs every loop: a loop that fails on an infrastructure
fault is restarted in place after a backoff, and the engine reports not ready until it
has recovered; any other failure (a bug, too many poison messages in a row) stops the
engine: the failure is kept and `on_failure` is told, so the process can exit non-zero
and be restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.shutdown import stop_within
from shared.supervisor import RestartPolicy, Supervisor
from stage_engine.backpressure import OutboxPressure
from stage_engine.housekeeping import Housekeeping
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.poll_loop import PollLoop
from stage_engine.rebalance import SeekToStoredOffsets
from stage_engine.relay import Relay
from stage_engine.rfm_refresh import LiveConfig, RfmRefresh
from stage_engine.store.database import Database
from stage_engine.timers import TimerLoop

STOP_TIMEOUT_S = 10.0


@dataclass
class Engine:
    db: Database
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    ownership: Ownership
    metrics: EngineMetrics
    live_config: LiveConfig
    poll_loop: PollLoop
    timers: TimerLoop
    relay: Relay
    housekeeping: Housekeeping
    pressure: OutboxPressure
    rfm: RfmRefresh | None
    assignments: SeekToStoredOffsets
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    on_failure: Callable[[BaseException], None] | None = None
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(
            service="stage-engine",
            restarts=self.metrics.loop_restarts,
            policy=self.restart_policy,
            on_failure=self.on_failure,
        )

    @property
    def failure(self) -> BaseException | None:
        """What stopped the engine (a failure that is no infrastructure fault)."""
        return self.supervisor.failure

    @property
    def running(self) -> bool:
        return bool(self.supervisor.tasks) and self.failure is None

    def not_ready(self) -> dict[str, object]:
        """Why the engine cannot do its work now (empty: it can): loops recovering from
        a fault, with the fault, and assigned partitions it could not take yet."""
        reasons: dict[str, object] = {}
        if recovering := self.supervisor.recovering():
            reasons["recovering_loops"] = recovering
        if not_taken := self.ownership.not_taken:
            reasons["partitions_not_taken"] = sorted(not_taken)
        return reasons

    def start_loops(self) -> None:
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "pressure": self.pressure.run,
            "poll": self.poll_loop.run,
            "timers": self.timers.run,
            "relay": self.relay.run,
            "housekeeping": self.housekeeping.run,
            "assignments": self.assignments.run,
        }
        if self.rfm is not None:
            loops["rfm"] = self.rfm.run
        self.supervisor.start(loops)

    async def stop(self) -> None:
        """Let rounds in flight finish (bounded), stop the loops, then the clients."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S), self.ownership.handover():
                for task in self.supervisor.tasks:
                    task.cancel()
        tasks = list(self.supervisor.tasks)
        for task in tasks:
            task.cancel()
        await stop_within("stage engine loops", lambda: _settled(tasks))
        self.supervisor.tasks.clear()
        # Killed during any of these: nothing is lost, the database holds the offsets.
        await stop_within("events consumer", self.consumer.stop)
        await stop_within("transitions producer", self.producer.stop)
        await stop_within("database pool", self.db.dispose)


async def _settled(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
