"""Ask the stage engine and the notifier for the figures the live view shows."""

from __future__ import annotations

import time
from typing import Any

import httpx

from simulator.stats import LiveStats, recall_rows


class ServiceProbe:
    """`GET /v1/stages` and `GET /v1/reports/recall`; a service that does not answer shows n/a."""

    def __init__(
        self,
        stage_engine_url: str,
        notifier_url: str,
        *,
        timeout_s: float = 3.0,
        recall_interval_s: float = 5.0,
    ) -> None:
        self._stage_engine_url = stage_engine_url.rstrip("/")
        self._notifier_url = notifier_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)
        # The recall report aggregates the whole ledger (about 60 ms on SQLite at the
        # end of a default run): asked every second, it took CPU from sending.
        self._recall_interval_s = recall_interval_s
        self._recall_asked_at: float | None = None
        self.last_error: str | None = None

    async def close(self) -> None:
        await self._client.aclose()

    async def refresh(self, stats: LiveStats, *, with_recall: bool = False) -> None:
        """Stages every time; the recall report when asked or when its interval is up."""
        stages = await self._get_json(f"{self._stage_engine_url}/v1/stages")
        if stages is not None:
            stats.set_stages(stages)
        now = time.monotonic()
        due = (
            self._recall_asked_at is None or now - self._recall_asked_at >= self._recall_interval_s
        )
        if not (with_recall or due):
            return
        self._recall_asked_at = now
        recall = await self._get_json(f"{self._notifier_url}/v1/reports/recall")
        if recall is not None:
            stats.recall = recall_rows(recall)

    async def _get_json(self, url: str) -> dict[str, Any] | None:
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            # The view keeps the last figures and says what failed; the run goes on.
            self.last_error = f"GET {url}: {type(exc).__name__}: {exc}"
            return None
        self.last_error = None
        return body if isinstance(body, dict) else None
