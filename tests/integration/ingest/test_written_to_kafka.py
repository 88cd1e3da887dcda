"""Every accepted call is on the events topic exactly once, with its key and fields."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson

from shared.topics import Topics
from tests.integration.ingest.support import (
    AUTH,
    OTHER_KEY,
    SOURCE,
    in_process,
    read_topic,
    settings_for,
)


async def test_every_accepted_call_is_written_once_with_its_key_and_fields(
    live_kafka: str, topics: Topics
) -> None:
    singles: list[tuple[str, dict[str, object]]] = [
        ("track", {"userId": "u-1", "event": "Signed Up", "properties": {"plan": "pro"}}),
        ("identify", {"userId": "u-1", "traits": {"email": "a@example.com"}}),
        ("page", {"anonymousId": "anon-1", "name": "Home", "properties": {"path": "/"}}),
        ("screen", {"userId": "u-2", "name": "Cart"}),
        ("group", {"userId": "u-2", "groupId": "acme", "traits": {"seats": 5}}),
        ("alias", {"userId": "u-3", "previousId": "anon-1"}),
    ]
    batch = [
        {
            "type": "track",
            "userId": f"u-{i % 7}",
            "event": "Order Completed",
            "messageId": f"b-{i}",
            "properties": {"revenue": i},
        }
        for i in range(60)
    ]
    async with in_process(settings_for(live_kafka, topics)) as client:
        for n, (call_type, body) in enumerate(singles):
            response = await client.post(
                f"/v1/{call_type}", json={**body, "messageId": f"s-{n}"}, auth=AUTH
            )
            assert (response.status_code, response.json()) == (200, {"success": True}), call_type
        response = await client.post(
            "/v1/batch",
            content=gzip.compress(orjson.dumps({"batch": batch, "writeKey": OTHER_KEY})),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert response.json() == {"success": True, "accepted": 60, "rejected": []}
        response = await client.post(
            "/v1/import",
            json={
                "batch": [{"type": "track", "anonymousId": "x", "event": "E", "messageId": "i-0"}]
            },
            auth=AUTH,
        )
        assert response.status_code == 200

    written = await read_topic(live_kafka, topics.events)
    ids = Counter(w.event.message_id for w in written)
    expected = {f"s-{n}" for n in range(6)} | {f"b-{i}" for i in range(60)} | {"i-0"}
    assert set(ids) == expected
    assert all(count == 1 for count in ids.values()), ids.most_common(3)
    by_id = {w.event.message_id: w for w in written}

    track = by_id["s-0"]
    assert (track.key, track.event.type, track.event.event) == ("u-1", "track", "Signed Up")
    assert (track.event.properties, track.event.source) == ({"plan": "pro"}, SOURCE)
    assert by_id["s-1"].event.traits == {"email": "a@example.com"}
    assert (by_id["s-2"].key, by_id["s-2"].event.name) == ("anon-1", "Home")
    assert (by_id["s-4"].event.group_id, by_id["s-4"].event.traits) == ("acme", {"seats": 5})
    assert (by_id["s-5"].key, by_id["s-5"].event.previous_id) == ("u-3", "anon-1")
    assert by_id["b-7"].key == "u-0"
    assert by_id["b-7"].event.properties == {"revenue": 7}
    assert by_id["b-7"].event.source == "default"
    assert by_id["i-0"].key == "x"
    # One user's events stay in one partition, in the order they were sent.
    for user in ("u-0", "u-3"):
        sent = [b["messageId"] for b in batch if b["userId"] == user]
        assert [
            w.event.message_id for w in written if w.key == user and w.event.message_id in sent
        ] == sent


async def test_event_time_is_skew_corrected_and_server_fields_are_the_servers(
    live_kafka: str, topics: Topics
) -> None:
    # The client's clock runs a day fast; the event happened 30 s before it was sent.
    client_now = datetime.now(UTC) + timedelta(days=1)
    body = {
        "userId": "u-skew",
        "event": "Viewed",
        "messageId": "skew-1",
        "timestamp": (client_now - timedelta(seconds=30)).isoformat(),
        "sentAt": client_now.isoformat(),
        "receivedAt": "2000-01-01T00:00:00Z",
        "source": "forged",
    }
    before = datetime.now(UTC)
    async with in_process(settings_for(live_kafka, topics)) as client:
        response = await client.post("/v1/track", json=body, auth=AUTH)
        assert response.status_code == 200
    after = datetime.now(UTC)

    [written] = await read_topic(live_kafka, topics.events)
    event = written.event
    assert before <= event.received_at <= after
    assert event.source == SOURCE
    assert event.received_at - event.timestamp == timedelta(seconds=30)
    assert event.original_timestamp == client_now - timedelta(seconds=30)


async def test_a_missing_message_id_is_generated(live_kafka: str, topics: Topics) -> None:
    async with in_process(settings_for(live_kafka, topics)) as client:
        for _ in range(2):
            response = await client.post("/v1/track", json={"userId": "u", "event": "E"}, auth=AUTH)
            assert response.status_code == 200
    written = await read_topic(live_kafka, topics.events)
    assert len({w.event.message_id for w in written}) == 2
