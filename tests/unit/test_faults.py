"""Infrastructure faults are told apart from a record's own failures."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError
from sqlalchemy.exc import DBAPIError

from shared.faults import is_infrastructure_fault, is_record_fault


def _wrapped(orig: Exception) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        KafkaConnectionError("broker down"),
        RequestTimedOutError(),
        _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed")),
        _wrapped(asyncpg.exceptions.QueryCanceledError("statement timeout")),
        _wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")),
        _wrapped(asyncpg.exceptions.AdminShutdownError("shutting down")),
    ],
    ids=repr,
)
def test_faults_of_the_database_or_broker_are_infrastructure(exc: BaseException) -> None:
    assert is_infrastructure_fault(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OverflowError("date value out of range"),
        ValueError("bad value"),
        _wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte 0x00")),
        _wrapped(asyncpg.exceptions.StringDataRightTruncationError("value too long")),
        _wrapped(asyncpg.exceptions.NumericValueOutOfRangeError("out of range")),
    ],
    ids=repr,
)
def test_a_records_own_failures_are_not(exc: BaseException) -> None:
    assert not is_infrastructure_fault(exc)


def test_an_error_caused_by_a_connection_error_counts_as_infrastructure() -> None:
    exc = ValueError("while writing")
    exc.__cause__ = ConnectionResetError(104, "reset")
    assert is_infrastructure_fault(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OverflowError("date value out of range"),
        ValueError("revenue is not finite"),
        _wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte 0x00")),
        _wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        # asyncpg's client-side encoding error is an InterfaceError, yet the value's fault.
        _wrapped(asyncpg.exceptions._base.DataError("invalid input for query argument $1")),
    ],
    ids=repr,
)
def test_a_records_own_failures_are_record_faults(exc: BaseException) -> None:
    assert is_record_fault(exc)
    assert not is_infrastructure_fault(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(asyncpg.exceptions.UndefinedTableError('relation "x" does not exist')),
        TypeError("unsupported operand"),
        KeyError("profile"),
        ConnectionRefusedError(111, "refused"),
    ],
    ids=repr,
)
def test_bugs_and_outages_are_not_record_faults(exc: BaseException) -> None:
    assert not is_record_fault(exc)
