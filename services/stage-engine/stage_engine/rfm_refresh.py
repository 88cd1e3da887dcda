"""RFM quantile edges refreshed from the population, now and then.

The pure core scores with `config.rfm_edges`; this loop recomputes the edges from every
stored profile (streamed, bounded memory), stores them for the other engines, and
swaps them into the live config. Scores already stored are refreshed as users change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from stage_engine.lifecycle import LifecycleConfig, RfmEdges, UserState, compute_rfm_edges
from stage_engine.store.database import Database
from stage_engine.store.tables import RFM_EDGES_ROW_ID, rfm_edges, users
from stage_engine.store.users import decode_state

log = logging.getLogger(__name__)

STREAM_ROWS = 5000


class LiveConfig:
    """The lifecycle config in force; callers ask for it per batch."""

    def __init__(self, base: LifecycleConfig) -> None:
        self._current = base

    def __call__(self) -> LifecycleConfig:
        return self._current

    def use_edges(self, edges: RfmEdges) -> None:
        self._current = self._current.model_copy(update={"rfm_edges": edges})


class RfmRefresh:
    def __init__(
        self,
        *,
        db: Database,
        live: LiveConfig,
        now: Callable[[], datetime | None],
        interval: timedelta,
    ) -> None:
        self._db = db
        self._live = live
        self._now = now
        self._interval = interval

    async def run(self) -> None:
        while True:
            await self.refresh_once()
            await asyncio.sleep(self._interval.total_seconds() / 4)  # periodic check

    async def refresh_once(self) -> None:
        now = self._now()
        if now is None:
            return
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(rfm_edges.c.edges, rfm_edges.c.computed_at).where(
                        rfm_edges.c.id == RFM_EDGES_ROW_ID
                    )
                )
            ).one_or_none()
        if row is not None and row.computed_at > now - self._interval:
            self._live.use_edges(_edges_from_json(row.edges))  # another engine's are fresh
            return
        async with self._db.read() as conn:
            edges = await conn.run_sync(_compute, now)
        # Killed right after: the edges are stored; before: recomputed on the next start.
        async with self._db.write() as conn:
            await conn.execute(
                self._db.upsert(rfm_edges, key=["id"], update=["edges", "computed_at"]),
                [{"id": RFM_EDGES_ROW_ID, "edges": _edges_to_json(edges), "computed_at": now}],
            )
        self._live.use_edges(edges)
        log.info("rfm edges refreshed", extra={"edges": asdict(edges)})


def _compute(conn: Connection, now: datetime) -> RfmEdges:
    result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
        select(users.c.state)
    )

    def states() -> Iterator[UserState]:
        for (text,) in result:
            try:
                yield decode_state(text)
            except ValueError:  # left out; the next batch or timer round quarantines it
                continue

    return compute_rfm_edges(states(), now)


def _edges_to_json(edges: RfmEdges) -> str:
    return orjson.dumps(asdict(edges)).decode()


def _edges_from_json(text: str) -> RfmEdges:
    raw = orjson.loads(text)
    return RfmEdges(
        recency_days=tuple(raw["recency_days"]),
        frequency_orders=tuple(raw["frequency_orders"]),
        monetary_revenue=tuple(raw["monetary_revenue"]),
    )
