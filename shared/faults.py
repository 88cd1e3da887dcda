"""Which failures are the infrastructure's, which are a record's, and which are ours.

- An infrastructure fault (PostgreSQL or Kafka unreachable, a statement timed out, the
  server shutting down, a deadlock): the loop pauses, backs off and tries the same work
  again. The work is fine, the world is not.
- A record fault (a value the database refuses, SQLSTATE classes 22 and 23; a value
  asyncpg cannot encode; an overflow or a refused value in the rules, ArithmeticError
  and ValueError): the record is isolated and dead-lettered, its neighbours go on.
- Anything else (an unknown table, a TypeError) is a bug or a broken deployment: it
  stops the service loudly rather than dead-letter every record that meets it.
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


# asyncpg's client-side "invalid input for query argument": an InterfaceError, but the
# value's fault, not the connection's.
_UNENCODABLE = asyncpg.exceptions._base.DataError
_RECORD: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,  # SQLSTATE class 22 (server side)
    asyncpg.exceptions.IntegrityConstraintViolationError,  # class 23
    _UNENCODABLE,
    ArithmeticError,
    ValueError,
)


def is_record_fault(exc: BaseException) -> bool:
    """True when `exc` is the fault of the record being applied (see the module doc)."""
    if is_infrastructure_fault(exc):
        return False
    return any(isinstance(link, _RECORD) for link in _chain(exc))


def is_infrastructure_fault(exc: BaseException) -> bool:
    """True when `exc`, or an error it wraps, is the database's or the broker's fault;
    for the ExceptionGroup a TaskGroup raises, when every exception in it is."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_infrastructure_fault(inner) for inner in exc.exceptions)
    links = list(_chain(exc))
    if any(isinstance(link, _UNENCODABLE) for link in links):
        return False
    for link in links:
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


def fault_text(exc: BaseException) -> str:
    """`Class: message` for a dead letter's error header: for a database error the
    driver's own error, never SQLAlchemy's text with the statement."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}"
