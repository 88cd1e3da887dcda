"""Send Segment batches to ingest, as an SDK would: HTTP Basic with the write key.

A batch counts as delivered only on ingest's success answer, which ingest gives
after Kafka acknowledged every event. 429 and 503 (and connection failures) are
retried after `Retry-After` or an exponential backoff with jitter, with the
same messageIds, so a retried batch that had in fact been written is dropped
by the stage engine's duplicate filter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from shared.errors import LifecycleError

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class IngestError(LifecycleError):
    """Ingest refused a batch for good (a bad write key, a malformed request)."""


class IngestUnavailableError(LifecycleError):
    """Ingest did not accept a batch within the allowed attempts."""


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int  # position in the batch that was sent
    reason: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    sent: int
    rejected: tuple[ItemError, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> int:
        return self.sent - len(self.rejected)


class BatchSender(Protocol):
    async def send_batch(self, items: Sequence[dict[str, Any]]) -> BatchResult: ...


class IngestClient:
    def __init__(
        self,
        base_url: str,
        write_key: str,
        *,
        timeout_s: float = 15.0,
        max_attempts: int = 8,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(write_key, ""),
            timeout=timeout_s,
            headers={"Content-Type": "application/json"},
            transport=transport,
        )
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._jitter = random.Random()

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> IngestClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send_batch(self, items: Sequence[dict[str, Any]]) -> BatchResult:
        """POST `/v1/batch`; returns which items ingest refused (by index), retrying the rest."""
        body = orjson.dumps({"batch": list(items)})
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.post("/v1/batch", content=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                retry_after_s = None
            else:
                if response.status_code == 200:
                    return BatchResult(len(items), _item_errors(response))
                if response.status_code in (400, 413) and (errors := _item_errors(response)):
                    return BatchResult(len(items), errors)
                if response.status_code not in RETRYABLE_STATUSES:
                    raise IngestError(
                        f"ingest answered {response.status_code} to a batch of {len(items)}: "
                        f"{response.text[:500]}"
                    )
                problem = f"HTTP {response.status_code}"
                retry_after_s = _retry_after_s(response)
            if attempt == self._max_attempts:
                raise IngestUnavailableError(
                    f"ingest did not accept a batch of {len(items)} after {attempt} attempts "
                    f"(last: {problem})"
                )
            await asyncio.sleep(self._delay_s(attempt, retry_after_s))  # backoff before a retry
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self._backoff_max_s * 4)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
        return self._jitter.uniform(ceiling / 2, ceiling)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _item_errors(response: httpx.Response) -> tuple[ItemError, ...]:
    """Per-item errors of a partly accepted batch, in whichever of the usual shapes ingest uses."""
    try:
        body = response.json()
    except ValueError:
        return ()
    if not isinstance(body, dict):
        return ()
    raw = body.get("errors") or body.get("rejected") or []
    errors = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("index"), int):
            reason = entry.get("reason") or entry.get("message") or entry.get("error") or "invalid"
            if field_name := entry.get("field"):
                reason = f"{field_name}: {reason}"
            errors.append(ItemError(entry["index"], str(reason)))
    return tuple(errors)
