"""Which failures are the infrastructure's and which are a record's.

A loop that fails on an infrastructure fault (PostgreSQL or Kafka unreachable, a
statement timed out, the server shutting down, a deadlock) pauses, backs off and tries
the same work again: the work is fine, the world is not. Any other failure while
applying a record is the record's (a value the database refuses, an overflow in the
rules): the record is isolated and dead-lettered, and its neighbours go on.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# asyncpg's classes for SQLSTATE classes 08 (connection), 53 (insufficient resources),
# 57 (operator intervention: shutdown, statement timeout), 58 (system error), plus
# deadlock and serialization failures, which succeed when run again.
_ASYNCPG_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.InterfaceError,
)
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset; TimeoutError is an OSError
    DisconnectionError,
    PoolTimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    *_ASYNCPG_TRANSIENT,
)


def is_infrastructure_fault(exc: BaseException) -> bool:
    """True when `exc`, or an error it wraps, is the database's or the broker's fault."""
    for link in _chain(exc):
        if isinstance(link, _TRANSIENT):
            return True
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, KafkaError) and link.retriable:
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, the DBAPI error it wraps, and its causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        if isinstance(link, DBAPIError) and isinstance(link.orig, BaseException):
            pending.append(link.orig)
        pending.extend(n for n in (link.__cause__, link.__context__) if n is not None)
