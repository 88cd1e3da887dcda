"""Segment's own Python SDK, unmodified, with only its host pointed at ingest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from segment.analytics import Client

from shared.topics import Topics
from tests.integration.ingest.support import (
    SOURCE,
    WRITE_KEY,
    read_topic,
    served,
    settings_for,
)


def drive_sdk(host: str, *, gzip: bool, errors: list[object]) -> None:
    """Blocking: the SDK queues calls, uploads them from its own thread, and flush() waits."""
    client = Client(
        write_key=WRITE_KEY,
        host=host,
        gzip=gzip,
        on_error=lambda error, _batch: errors.append(error),
        max_retries=2,
    )
    tag = "gz" if gzip else "plain"
    client.track("u-1", "Order Completed", {"revenue": 42.5}, message_id=f"{tag}-track")
    client.identify("u-1", {"email": "a@example.com"}, message_id=f"{tag}-identify")
    client.page("u-1", "Docs", "Quickstart", {"path": "/start"}, message_id=f"{tag}-page")
    client.screen("u-2", "App", "Cart", message_id=f"{tag}-screen")
    client.group("u-2", "acme", {"plan": "pro"}, message_id=f"{tag}-group")
    client.alias("anon-9", "u-3", message_id=f"{tag}-alias")
    client.track(
        anonymous_id="anon-9",
        event="Viewed",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        message_id=f"{tag}-anonymous",
    )
    client.flush()
    client.shutdown()


async def test_the_segment_python_sdk_delivers_every_call_to_the_topic(
    live_kafka: str, topics: Topics
) -> None:
    errors: list[object] = []
    async with served(settings_for(live_kafka, topics)) as host:
        for gzip in (True, False):
            await asyncio.to_thread(drive_sdk, host, gzip=gzip, errors=errors)
    assert errors == []

    written = await read_topic(live_kafka, topics.events)
    by_id = {w.event.message_id: w for w in written}
    kinds = ["track", "identify", "page", "screen", "group", "alias", "anonymous"]
    expected = {f"{tag}-{kind}" for tag in ("gz", "plain") for kind in kinds}
    assert sorted(by_id) == sorted(expected)
    assert len(written) == len(expected)  # each exactly once

    track = by_id["gz-track"]
    assert (track.key, track.event.event, track.event.properties) == (
        "u-1",
        "Order Completed",
        {"revenue": 42.5},
    )
    assert track.event.source == SOURCE
    assert track.event.context["library"]["name"] == "analytics-python"
    assert by_id["gz-identify"].event.traits == {"email": "a@example.com"}
    page = by_id["plain-page"].event
    assert (page.type, page.category, page.name, page.properties) == (
        "page",
        "Docs",
        "Quickstart",
        {"path": "/start"},
    )
    assert (by_id["gz-group"].event.group_id, by_id["gz-group"].key) == ("acme", "u-2")
    alias = by_id["plain-alias"]
    assert (alias.event.previous_id, alias.key) == ("anon-9", "u-3")
    anonymous = by_id["gz-anonymous"]
    assert (anonymous.key, anonymous.event.user_id) == ("anon-9", None)
    # The SDK sends sentAt a moment after the timestamp: the skew-corrected time lies
    # before receipt by about as long as the SDK held the call; the original is kept.
    assert anonymous.event.original_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert anonymous.event.timestamp < anonymous.event.received_at
