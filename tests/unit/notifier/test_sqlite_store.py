"""The embedded SQLite store: the claim's plan, and one writer at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from notifier.claims import _claim_statement
from notifier.store import tables as t
from notifier.store.held import HeldConnection
from notifier.store.migrate import migrate
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine
from tests.write_turns import assert_second_write_waits_for_the_first

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _action(n: int) -> dict[str, object]:
    """Many transitions answered by one rule: the shape of a real ledger."""
    return {
        "transition_id": f"tr-{n}",
        "ledger_key": f"silent_wakeup/{'coupon' if n % 2 else 'email'}",
        "user_id": f"u-{n}",
        "rule": "silent_wakeup",
        "action": "coupon" if n % 2 else "email",
        "position": n % 2,
        "channel": "coupon" if n % 2 else "email",
        "params": {},
        "in_holdout": False,
        "idempotency_key": f"k-{n}",
        "status": t.PENDING if n % 50 == 0 else t.SENT,
        "attempts": 0,
        "due_at": T0,
        "not_before": T0,
        "transition_at": T0,
        "planned_at": T0,
    }


async def _claim_plan(engine: AsyncEngine) -> str:
    sql = str(
        _claim_statement(context_in_returning=False).compile(
            dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True}
        )
    )
    params = ("1", T0, "pending", T0, T0, 1, "coupon", "pending", 64, 0)
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row[-1]) for row in rows)


async def test_the_claim_looks_earlier_coupons_up_by_transition(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(t.actions), [_action(n) for n in range(3000)])
    # No statistics (SQLite has none until ANALYZE): the plan must not depend on them.
    plan = await _claim_plan(engine)
    assert "sqlite_autoindex_notifier_actions_1 (transition_id=?)" in plan, plan
    assert "notifier_actions_rule_channel" not in plan, plan


async def test_writers_on_one_sqlite_engine_take_turns(engine: AsyncEngine) -> None:
    first, second = HeldConnection(engine), HeldConnection(engine)
    for held in (first, second):  # connected beforehand: a begin is then one round trip
        async with held.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    try:
        await assert_second_write_waits_for_the_first(first.begin, second.begin)
    finally:
        await first.close()
        await second.close()
