"""The one place that knows PostgreSQL and SQLite spell upserts differently."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignoring_conflicts(
    conn: AsyncConnection, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row whose unique key exists is left as it is."""
    return _insert_ignoring_conflicts(conn.dialect.name, table)


# Statements are immutable (every method returns a copy): building each one once
# lets SQLAlchemy reuse its memoized cache key instead of recomputing it per batch.
@functools.cache
def _insert_ignoring_conflicts(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database {dialect!r}: use PostgreSQL or SQLite")


def upsert(
    conn: AsyncConnection, table: Table, *, key: list[str], update: list[str]
) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET the `update` columns."""
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=key, set_={name: pg.excluded[name] for name in update}
        )
    if conn.dialect.name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=key, set_={name: lite.excluded[name] for name in update}
        )
    raise ValueError(f"unsupported database {conn.dialect.name!r}: use PostgreSQL or SQLite")


def one_of(
    conn: AsyncConnection, column: ColumnElement[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """`column IN values`, as `column = ANY(array)` on PostgreSQL.

    An IN list is rendered with one placeholder per value, so every batch size is a
    new statement for SQLAlchemy to compile and for PostgreSQL to parse and plan;
    one array parameter keeps the statement text (and its prepared plan) the same.
    """
    found = list(values)
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, found, type_=postgresql.ARRAY(column.type)))
    return column.in_(found)


def one_of_param(dialect: str, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """Like one_of, for a statement built once: the values come as the parameter `name`."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
