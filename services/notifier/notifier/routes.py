"""HTTP API: consent suppressions and the recall report. Thin: the work is in the modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.channels.params import ChannelName
from notifier.recall import RecallReport, recall_report
from notifier.store import tables as t
from notifier.store.dialect import upsert

UserId = Annotated[str, Path(min_length=1, max_length=200)]


class SuppressRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[ChannelName] | None = Field(
        default=None, description="the channels to stop; null = every contact channel"
    )
    reason: str = Field(min_length=1, max_length=500)


class Suppressed(BaseModel):
    user_id: str
    channels: list[str]
    reason: str


def api_router(engine: AsyncEngine, *, default_window_days: int) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/users/{user_id}/suppress")
    async def suppress(user_id: UserId, body: SuppressRequest) -> Suppressed:
        channels = sorted(set(body.channels)) if body.channels else [t.ALL_CHANNELS]
        now = datetime.now(UTC)
        rows = [
            {"user_id": user_id, "channel": channel, "reason": body.reason, "created_at": now}
            for channel in channels
        ]
        async with engine.begin() as conn:
            await conn.execute(
                upsert(conn, t.suppressions, key=["user_id", "channel"], update=["reason"]),
                rows,
            )
        # Killed right after the commit: the opt-out holds. Planning skips the user's
        # later actions on these channels and senders re-check before each send, so
        # a deferred or retrying message is skipped too; one already in flight may go.
        return Suppressed(user_id=user_id, channels=channels, reason=body.reason)

    @router.get("/reports/recall")
    async def recall(
        window_days: Annotated[int | None, Query(ge=1, le=365)] = None,
    ) -> RecallReport:
        async with engine.connect() as conn:
            return await recall_report(conn, window_days=window_days or default_window_days)

    return router
