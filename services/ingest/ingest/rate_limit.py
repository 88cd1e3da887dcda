"""A token bucket per write key: `rate_per_s` requests a second, bursts up to `burst`.

Time is an argument (`now_s`, monotonic seconds), so the bucket is tested
without a clock. One bucket per configured key: the map is bounded by the keys file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"rate_per_s={rate_per_s} and burst={burst} must be positive")
        self._rate_per_s = rate_per_s
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now_s: float) -> float:
        """Spend one token for `key`: 0.0 when allowed, else seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self._burst, updated_s=now_s)
        elapsed_s = max(0.0, now_s - bucket.updated_s)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed_s * self._rate_per_s)
        bucket.updated_s = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate_per_s


def retry_after_header_s(wait_s: float) -> int:
    """Retry-After is whole seconds; never 0, which SDKs read as "retry now"."""
    return max(1, math.ceil(wait_s))
