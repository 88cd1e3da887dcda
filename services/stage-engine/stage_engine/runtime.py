"""A running engine: its clients, its loops, and what happens when one of them dies.

A loop that raises (a crash, or too many poison messages in a row) stops the engine:
the failure is kept and `on_failure` is told, so the process can exit non-zero and be
restarted; nothing is retried forever in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.shutdown import stop_within
from stage_engine.backpressure import OutboxPressure
from stage_engine.housekeeping import Housekeeping
from stage_engine.metrics import EngineMetrics
from stage_engine.ownership import Ownership
from stage_engine.poll_loop import PollLoop
from stage_engine.relay import Relay
from stage_engine.rfm_refresh import LiveConfig, RfmRefresh
from stage_engine.store.database import Database
from stage_engine.timers import TimerLoop

log = logging.getLogger(__name__)

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
    on_failure: Callable[[BaseException], None] | None = None
    failure: BaseException | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and self.failure is None

    def start_loops(self) -> None:
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "pressure": self.pressure.run,
            "poll": self.poll_loop.run,
            "timers": self.timers.run,
            "relay": self.relay.run,
            "housekeeping": self.housekeeping.run,
        }
        if self.rfm is not None:
            loops["rfm"] = self.rfm.run
        for name, run in loops.items():
            task = asyncio.create_task(self._supervised(run), name=f"stage-engine-{name}")
            self._tasks.append(task)

    async def _supervised(self, run: Callable[[], Awaitable[None]]) -> None:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
                log.exception("stage engine loop failed; stopping", exc_info=exc)
                if self.on_failure is not None:
                    self.on_failure(exc)
            raise

    async def stop(self) -> None:
        """Let rounds in flight finish (bounded), stop the loops, then the clients."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S), self.ownership.handover():
                for task in self._tasks:
                    task.cancel()
        for task in self._tasks:
            task.cancel()
        await stop_within("stage engine loops", lambda: _settled(self._tasks))
        self._tasks.clear()
        # Killed during any of these: nothing is lost, the database holds the offsets.
        await stop_within("events consumer", self.consumer.stop)
        await stop_within("transitions producer", self.producer.stop)
        await stop_within("database pool", self.db.dispose)


async def _settled(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
