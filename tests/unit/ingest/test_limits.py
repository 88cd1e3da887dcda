"""The token bucket, the in-flight budget, body decoding and the size refusals."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from ingest.body import check_content_type, gunzip
from ingest.publish import InFlight
from ingest.rate_limit import RateLimiter, retry_after_header_s
from ingest.refusals import RefusedError
from ingest.settings import IngestSettings

from shared.errors import SettingsError
from shared.settings import load_settings


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate_per_s=10, burst=3)
    assert [limiter.take("k", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait_s = limiter.take("k", 100.0)
    assert wait_s == pytest.approx(0.1)
    assert limiter.take("other", 100.0) == 0.0  # buckets are per key
    assert limiter.take("k", 100.15) == 0.0  # 1.5 tokens refilled after 0.15 s
    assert limiter.take("k", 100.15) == pytest.approx(0.05)
    assert [limiter.take("k", 200.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # capped at burst
    assert limiter.take("k", 200.0) > 0


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert [retry_after_header_s(s) for s in (0.001, 1.0, 1.2)] == [1, 1, 2]


def test_in_flight_refuses_what_would_pass_the_limit_and_releases() -> None:
    budget = InFlight(limit=10)
    assert budget.try_acquire(6)
    assert not budget.try_acquire(5)
    assert budget.try_acquire(4)
    assert not budget.try_acquire(1)
    budget.release(6)
    assert budget.try_acquire(1)
    assert budget.count == 5


def test_one_request_bigger_than_the_limit_may_go_alone() -> None:
    budget = InFlight(limit=10)
    assert budget.try_acquire(25)
    assert not budget.try_acquire(1)
    budget.release(25)
    assert budget.count == 0


async def test_in_flight_release_one_settles_a_failed_future_quietly() -> None:
    budget = InFlight(limit=10)
    assert budget.try_acquire(2)
    failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("broker gone"))
    budget.release_one(failed)
    cancelled: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    budget.release_one(cancelled)
    assert budget.count == 0


def test_gzip_bodies_are_inflated_up_to_the_limit() -> None:
    assert gunzip(gzip.compress(b'{"a": 1}'), limit_bytes=100, what="batch") == b'{"a": 1}'
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(RefusedError) as refused:
        gunzip(bomb, limit_bytes=1000, what="batch")
    assert refused.value.status == 413
    assert "decompressed" in refused.value.reason


@pytest.mark.parametrize(
    "data", [b"plain text", gzip.compress(b"{}")[:-6], gzip.compress(b"{}") + b"x"]
)
def test_broken_gzip_is_a_400_naming_the_encoding(data: bytes) -> None:
    with pytest.raises(RefusedError) as refused:
        gunzip(data, limit_bytes=1000, what="batch")
    assert (refused.value.status, refused.value.field) == (400, "Content-Encoding")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/plain"]
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type", [None, "", "text/html", "application/x-www-form-urlencoded"]
)
def test_other_content_types_are_a_400_naming_the_header(content_type: str | None) -> None:
    with pytest.raises(RefusedError) as refused:
        check_content_type(content_type)
    assert (refused.value.status, refused.value.field) == (400, "Content-Type")


def test_settings_refuse_a_body_limit_below_the_event_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_MAX_EVENT_BYTES", "65536")
    monkeypatch.setenv("INGEST_MAX_BODY_BYTES", "4096")
    with pytest.raises(SettingsError, match="INGEST_MAX_BODY_BYTES"):
        load_settings(IngestSettings)


def test_settings_defaults_are_segment_limits() -> None:
    settings = IngestSettings()
    assert (settings.ingest_max_event_bytes, settings.ingest_max_body_bytes) == (32768, 512000)
