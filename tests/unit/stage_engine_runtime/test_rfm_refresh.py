"""RFM edges computed from the stored population, shared through the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.rfm_refresh import LiveConfig, RfmRefresh
from stage_engine.store.database import Database
from stage_engine.store.migrate import migrate
from stage_engine.store.users import StoredUser, upsert_users

from shared.db import make_engine
from shared.events import Event

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _buyer(n: int) -> StoredUser:
    config = LifecycleConfig()
    state = None
    for k in range(1 + n % 4):
        at = T0 + timedelta(days=k, minutes=n)
        event = Event.model_validate(
            {
                "message_id": f"{n}-{k}",
                "type": "track",
                "event": "Order Completed",
                "user_id": f"u{n}",
                "timestamp": at,
                "received_at": at,
                "properties": {"revenue": 10.0 * (n + 1)},
            }
        )
        state = advance(state, event, config).state
    assert state is not None
    return StoredUser(state, 0)


async def test_edges_are_computed_stored_and_reused(tmp_path: Path) -> None:
    db = Database(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rfm.db'}"))
    await migrate(db.engine)
    async with db.write() as conn:
        await upsert_users(conn, db, [_buyer(n) for n in range(60)], now=T0)
    now = T0 + timedelta(days=10)
    live = LiveConfig(LifecycleConfig())
    default_edges = live().rfm_edges
    refresh = RfmRefresh(db=db, live=live, now=lambda: now, interval=timedelta(hours=1))
    await refresh.refresh_once()
    computed = live().rfm_edges
    assert computed != default_edges
    assert computed.monetary_revenue[0] < computed.monetary_revenue[-1]

    # Another engine (a new LiveConfig) takes the stored edges instead of recomputing.
    other = LiveConfig(LifecycleConfig())
    later = now + timedelta(minutes=5)
    await RfmRefresh(
        db=db, live=other, now=lambda: later, interval=timedelta(hours=1)
    ).refresh_once()
    assert other().rfm_edges == computed
    await db.dispose()
