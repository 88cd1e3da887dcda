"""The loops' supervisor: infrastructure faults restart a loop after a growing backoff,
shown in readiness until it recovers; anything else stops the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError
from stage_engine.metrics import EngineMetrics

from shared.supervisor import (
    LoopHealth,
    RestartPolicy,
    Supervisor,
    fault_reason,
    is_infrastructure,
)
from tests.waiting import eventually

POLICY = RestartPolicy()
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@pytest.mark.parametrize(
    ("faults_in_a_row", "delay_s"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0), (5000, 30.0)],
)
def test_backoff_doubles_from_half_a_second_to_thirty(faults_in_a_row: int, delay_s: float) -> None:
    assert POLICY.delay(faults_in_a_row) == delay_s


def test_a_loop_that_ran_long_enough_starts_a_new_streak() -> None:
    health = LoopHealth()
    health.started(0.0)
    assert health.faulted(1.0, "TimeoutError", POLICY) == 0.5
    health.started(1.5)
    assert health.faulted(2.0, "TimeoutError", POLICY) == 1.0  # ran 0.5 s: same streak
    assert health.recovering(2.5, POLICY), "waiting out its backoff"
    health.started(3.0)
    assert health.recovering(3.0 + POLICY.healthy_after_s - 0.1, POLICY)
    assert not health.recovering(3.0 + POLICY.healthy_after_s, POLICY)
    assert health.faulted(3.0 + POLICY.healthy_after_s + 5, "OSError", POLICY) == 0.5
    assert health.faults_in_a_row == 1
    assert health.last_fault == "OSError"


def _caused_by(exc: E, cause: BaseException) -> E:
    exc.__cause__ = cause  # as `raise exc from cause` leaves it
    return exc


def _db_error(cause: BaseException) -> DBAPIError:
    return _caused_by(DBAPIError("SELECT 1", None, cause), cause)


def test_fault_classes() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed")
    cancelled = asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")
    assert is_infrastructure(refused)
    assert is_infrastructure(_db_error(cancelled))
    assert fault_reason(_db_error(cancelled)) == "QueryCanceledError"
    assert not is_infrastructure(ValueError("year 10000 is out of range"))
    # a TaskGroup's (the timer loop's workers): infrastructure only when all are
    assert is_infrastructure(ExceptionGroup("round", [refused, TimeoutError()]))
    assert not is_infrastructure(ExceptionGroup("round", [refused, ValueError("bug")]))
    assert fault_reason(ExceptionGroup("round", [refused])) == "ConnectionRefusedError"
    # as asyncio.timeout raises it
    timed_out = _caused_by(TimeoutError(), asyncio.CancelledError())
    assert fault_reason(timed_out) == "TimeoutError"


def _flaky(faults: list[BaseException], runs: list[int]) -> Callable[[], asyncio.Future[None]]:
    """A loop that raises each of `faults` in turn, then runs until cancelled."""

    async def run() -> None:
        runs.append(1)
        if faults:
            raise faults.pop(0)
        await asyncio.Event().wait()

    return run  # type: ignore[return-value]


async def test_infrastructure_faults_restart_the_loop_and_show_until_it_recovers() -> None:
    metrics = EngineMetrics()
    failures: list[BaseException] = []
    policy = RestartPolicy(first_delay_s=0.01, max_delay_s=0.02, healthy_after_s=0.5)
    supervisor = Supervisor(
        service="t", restarts=metrics.loop_restarts, policy=policy, on_failure=failures.append
    )
    runs: list[int] = []
    faults: list[BaseException] = [ConnectionRefusedError(111, "refused")] * 3
    supervisor.start({"poll": _flaky(faults, runs)})
    try:
        await eventually(lambda: _value(len(runs)), until=lambda n: n == 4, what="4 runs")
        assert supervisor.recovering() == {"poll": "ConnectionRefusedError"}
        assert supervisor.report()["poll"]["state"] == "recovering"
        restarts = metrics.registry.get_sample_value(
            "stage_engine_loop_restarts_total",
            {"loop": "poll", "reason": "ConnectionRefusedError"},
        )
        assert restarts == 3
        await eventually(
            lambda: _value(supervisor.recovering()), until=lambda r: r == {}, what="recovered"
        )
        assert supervisor.report()["poll"]["state"] == "running"
        assert failures == []
        assert supervisor.failure is None
    finally:
        await _cancel(supervisor)


async def test_any_other_exception_stops_the_engine() -> None:
    failures: list[BaseException] = []
    supervisor = Supervisor(
        service="t",
        restarts=EngineMetrics().loop_restarts,
        policy=POLICY,
        on_failure=failures.append,
    )
    bug = ZeroDivisionError("division by zero")
    runs: list[int] = []
    supervisor.start({"timers": _flaky([bug], runs), "relay": _flaky([], [])})
    try:
        await eventually(lambda: _value(failures), what="on_failure told")
        assert failures == [bug]
        assert supervisor.failure is bug
        assert supervisor.report()["timers"]["state"] == "stopped"
        assert runs == [1], "not restarted"
        task = supervisor.tasks[0]
        await eventually(lambda: _value(task.done()), what="the loop's task ended")
        assert task.exception() is bug
    finally:
        await _cancel(supervisor)


async def _value(value: T) -> T:
    return value


async def _cancel(supervisor: Supervisor) -> None:
    for task in supervisor.tasks:
        task.cancel()
    await asyncio.gather(*supervisor.tasks, return_exceptions=True)
