"""The one place that knows PostgreSQL and SQLite spell upserts differently."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignoring_conflicts(
    conn: AsyncConnection, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row whose unique key exists is left as it is."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database {conn.dialect.name!r}: use PostgreSQL or SQLite")


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
