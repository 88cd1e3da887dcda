"""On SQLite, the notifier's writing loops take turns in-process.

SQLite lets one transaction write at a time. A second writer waits inside
SQLite's busy handler, which polls in sleeps that grow to 100 ms, so the four
loops that write (the transition consumer, the claims, the results, the
outcome relay) lost whole tenths of a second per collision in bursts, such as
the 08:00 release of messages held by quiet hours. Queued on an asyncio.Lock
instead, the next loop starts the moment the previous one commits.
PostgreSQL takes row locks and many writers at once: no gate there.
"""

from __future__ import annotations

import asyncio
import weakref

from sqlalchemy.ext.asyncio import AsyncEngine

# One gate per engine (a service has one engine; tests build several).
_gates: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_gate(engine: AsyncEngine) -> asyncio.Lock | None:
    """The lock the engine's writers share, or None where the database needs none."""
    if engine.dialect.name != "sqlite":
        return None
    gate = _gates.get(engine)
    if gate is None:
        gate = _gates[engine] = asyncio.Lock()
    return gate
