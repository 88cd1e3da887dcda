"""Retry delays: exponential backoff with jitter, capped. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_ms: int
    max_ms: int

    def delay_ms(
        self, attempt: int, rng: random.Random, retry_after_ms: float | None = None
    ) -> float:
        """Delay before attempt `attempt + 1`, after `attempt` failures (attempt >= 1).

        "Equal jitter": half the exponential step is kept, half is random, so
        retries of a burst of failures spread out yet never come back at once.
        A provider's Retry-After is honoured as a floor.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        step = min(self.max_ms, self.base_ms * (1 << min(attempt - 1, 30)))
        delay = step / 2 + rng.uniform(0, step / 2)
        if retry_after_ms is not None:
            delay = max(delay, min(retry_after_ms, self.max_ms))
        return delay
