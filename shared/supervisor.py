"""One supervisor for a service's background loops (the stage engine's and the
notifier's): restart on the world's faults, stop on our own.

A loop that raises an infrastructure fault (shared.faults: the database or the broker
unreachable, a statement timed out) is started again in place after a backoff of
0.5 s, doubling to 30 s. A loop that then runs `healthy_after_s` without a fault has
recovered: its next fault starts the backoff from 0.5 s again. Each restart is counted
(`<service>_loop_restarts_total{loop,reason}`), logged as an error, and the loop is
listed by `recovering()` (the service's readiness) until it has recovered.

Any other exception is a bug or a broken input stream, and is not retried in place:
the failure is kept, `on_failure` is told (the process exits non-zero and is
restarted) and the other loops are left to `Engine.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter

from shared.errors import UpstreamBrokenError
from shared.faults import is_infrastructure_fault

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # Run this long without a fault, a restarted loop has recovered. An attempt that
    # waits on a dead database may outlast it (up to the statement deadline,
    # shared.db.DbTimeouts): readiness' own database check is red meanwhile.
    healthy_after_s: float = 30.0

    def delay(self, faults_in_a_row: int) -> float:
        """The wait before restarting a loop that failed `faults_in_a_row` times."""
        doublings = min(max(0, faults_in_a_row - 1), 32)  # 2.0**1024 would overflow
        return min(self.max_delay_s, self.first_delay_s * 2.0**doublings)


@dataclass(slots=True)
class LoopHealth:
    """One loop's record of faults; pure, the time passed in."""

    faults_in_a_row: int = 0
    last_fault: str | None = None
    running_since_s: float | None = None  # None: waiting out a backoff (or not started)

    def started(self, now_s: float) -> None:
        self.running_since_s = now_s

    def faulted(self, now_s: float, reason: str, policy: RestartPolicy) -> float:
        """Record a fault; the backoff before the restart."""
        ran_s = 0.0 if self.running_since_s is None else now_s - self.running_since_s
        if ran_s >= policy.healthy_after_s:
            self.faults_in_a_row = 0  # it had recovered: this is a new streak
        self.faults_in_a_row += 1
        self.last_fault = reason
        self.running_since_s = None
        return policy.delay(self.faults_in_a_row)

    def recovering(self, now_s: float, policy: RestartPolicy) -> bool:
        """Failed, and not yet run `healthy_after_s` since."""
        if self.faults_in_a_row == 0:
            return False
        return self.running_since_s is None or now_s - self.running_since_s < policy.healthy_after_s


class Supervisor:
    def __init__(
        self,
        *,
        service: str,
        restarts: Counter,
        policy: RestartPolicy,
        on_failure: Callable[[BaseException], None] | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._restarts = restarts  # labels: loop, reason
        self._policy = policy
        self._on_failure = on_failure
        self._monotonic_s = monotonic_s
        self._health: dict[str, LoopHealth] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self.failed_loop: str | None = None

    def start(self, loops: Mapping[str, Callable[[], Awaitable[None]]]) -> None:
        for name, run in loops.items():
            self._health[name] = LoopHealth()
            task = asyncio.create_task(self._supervise(name, run), name=f"{self._service}-{name}")
            self.tasks.append(task)

    def recovering(self) -> dict[str, str]:
        """Each loop that failed on a fault and has not recovered yet, with the fault."""
        now = self._monotonic_s()
        return {
            name: health.last_fault or "?"
            for name, health in self._health.items()
            if health.recovering(now, self._policy)
        }

    def report(self) -> dict[str, dict[str, object]]:
        """Every loop's state, for /healthz."""
        now = self._monotonic_s()
        states: dict[str, dict[str, object]] = {}
        for name, health in self._health.items():
            if name == self.failed_loop:
                state = "stopped"
            elif health.running_since_s is None:
                state = "backing off"
            elif health.recovering(now, self._policy):
                state = "recovering"
            else:
                state = "running"
            states[name] = {
                "state": state,
                "faults_in_a_row": health.faults_in_a_row,
                "last_fault": health.last_fault,
            }
        return states

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        health = self._health[name]
        while True:
            health.started(self._monotonic_s())
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if not is_infrastructure(exc):
                    self._stop(name, exc)
                    raise
                delay_s = self._restarting(name, health, exc)
            else:
                return  # a loop that returns has finished its work
            await asyncio.sleep(delay_s)  # the backoff before the restart

    def _restarting(self, name: str, health: LoopHealth, exc: BaseException) -> float:
        root = root_cause(exc)
        reason = type(root).__name__
        delay_s = health.faulted(self._monotonic_s(), reason, self._policy)
        self._restarts.labels(name, reason).inc()
        log.error(
            "loop failed on an infrastructure fault; restarting it",
            extra={
                "loop": name,
                "reason": reason,
                "error": str(root),
                "faults_in_a_row": health.faults_in_a_row,
                "restart_in_s": delay_s,
            },
        )
        return delay_s

    def _stop(self, name: str, exc: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        self.failed_loop = name
        log.exception(
            "loop failed; stopping", extra={"service": self._service, "loop": name}, exc_info=exc
        )
        if self._on_failure is not None:
            self._on_failure(exc)


def is_infrastructure(exc: BaseException) -> bool:
    """shared.faults' verdict (which also reads the ExceptionGroup of the timer loop's
    workers); a broken upstream (shared.errors.UpstreamBrokenError) is waited out the
    same way."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_infrastructure(inner) for inner in exc.exceptions)
    return isinstance(exc, UpstreamBrokenError) or is_infrastructure_fault(exc)


def fault_reason(exc: BaseException) -> str:
    """A metric label for a fault: the class of its root cause (ConnectionRefusedError,
    TimeoutError, QueryCanceledError, KafkaConnectionError...), a bounded set."""
    return type(root_cause(exc)).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The end of `exc`'s `raise ... from` chain (the driver's own error under
    SQLAlchemy's wrapper); for a group, its first exception's. A TimeoutError raised
    from the CancelledError that enforced it is the TimeoutError."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None and not isinstance(exc.__cause__, asyncio.CancelledError):
            exc = exc.__cause__
        else:
            break
    return exc
