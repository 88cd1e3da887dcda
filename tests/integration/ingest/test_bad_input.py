"""Each kind of bad input gets a clear JSON error naming the field, and nothing else is lost."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from shared.topics import Topics
from tests.integration.ingest.support import (
    AUTH,
    WRITE_KEY,
    basic_auth,
    in_process,
    read_topic,
    served,
    settings_for,
)

JSON = {"content-type": "application/json"}
BIG = "x" * 40_000  # over the 32 KB event limit

# (name, route, request keyword arguments for httpx, status, field named in the answer)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("malformed JSON", "/v1/track", {"content": b'{"userId": "u",', "headers": JSON}, 400, "body"),
    ("not an object", "/v1/track", {"content": b"[]", "headers": JSON}, 400, "body"),
    (
        "wrong content type",
        "/v1/track",
        {"content": b'{"userId": "u", "event": "E"}', "headers": {"content-type": "text/html"}},
        400,
        "Content-Type",
    ),
    (
        "no content type",
        "/v1/track",
        {"content": b'{"userId": "u", "event": "E"}'},
        400,
        "Content-Type",
    ),
    (
        "unknown encoding",
        "/v1/track",
        {"content": b"{}", "headers": {**JSON, "content-encoding": "br"}},
        400,
        "Content-Encoding",
    ),
    (
        "not gzip",
        "/v1/track",
        {"content": b"{}", "headers": {**JSON, "content-encoding": "gzip"}},
        400,
        "Content-Encoding",
    ),
    ("no ids", "/v1/track", {"json": {"event": "E"}}, 400, "userId"),
    ("identify without ids", "/v1/identify", {"json": {"traits": {}}}, 400, "userId"),
    ("track without event", "/v1/track", {"json": {"userId": "u"}}, 400, "event"),
    ("alias without previousId", "/v1/alias", {"json": {"userId": "u"}}, 400, "previousId"),
    ("group without groupId", "/v1/group", {"json": {"userId": "u"}}, 400, "groupId"),
    (
        "properties not an object",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "properties": [1]}},
        400,
        "properties",
    ),
    ("userId not a string", "/v1/page", {"json": {"userId": {"id": 1}}}, 400, "userId"),
    (
        "unparseable timestamp",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "timestamp": "last tuesday"}},
        400,
        "timestamp",
    ),
    (
        "unparseable sentAt",
        "/v1/screen",
        {"json": {"userId": "u", "sentAt": "2026-02-30T00:00:00Z"}},
        400,
        "sentAt",
    ),
    (
        "event over 32 KB",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "properties": {"x": BIG}}},
        413,
        "body",
    ),
    (
        "batch body over 500 KB",
        "/v1/batch",
        {
            "json": {
                "batch": [
                    {"type": "track", "userId": "u", "event": "E", "properties": {"x": BIG}}
                    for _ in range(14)
                ]
            }
        },
        413,
        "body",
    ),
    (
        "gzip bomb",
        "/v1/batch",
        {
            "content": gzip.compress(b" " * 5_000_000),
            "headers": {**JSON, "content-encoding": "gzip"},
        },
        413,
        "body",
    ),
    # Issue 14: inputs that once stopped the stage engine.
    (
        "timestamp whose UTC overflows",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "timestamp": "9999-12-31T23:00:00-05:00"}},
        400,
        "timestamp",
    ),
    (
        "timestamp whose UTC underflows",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00+05:00"}},
        400,
        "timestamp",
    ),
    (
        "timestamp more than 24 h ahead",
        "/v1/identify",
        {"json": {"userId": "u", "timestamp": "9999-12-31T00:00:00Z"}},
        400,
        "timestamp",
    ),
    ("NUL in userId", "/v1/track", {"json": {"userId": "u\u0000x", "event": "E"}}, 400, "userId"),
    (
        "NUL in messageId",
        "/v1/track",
        {"json": {"userId": "u", "event": "E", "messageId": "m\u0000"}},
        400,
        "messageId",
    ),
    (
        "revenue beyond the bound",
        "/v1/track",
        {"json": {"userId": "u", "event": "Order Completed", "properties": {"revenue": 1.7e308}}},
        400,
        "properties.revenue",
    ),
    (
        "revenue that overflows a double",
        "/v1/track",
        {
            "content": b'{"userId": "u", "event": "E", "properties": {"revenue": 1e400}}',
            "headers": JSON,
        },
        400,
        "properties.revenue",
    ),
    ("batch not a list", "/v1/batch", {"json": {"batch": {"type": "track"}}}, 400, "batch"),
    ("empty batch", "/v1/batch", {"json": {"batch": []}}, 400, "batch"),
    (
        "batch with no valid call",
        "/v1/batch",
        {"json": {"batch": [{"type": "track", "userId": "u"}, {"type": "nope"}]}},
        400,
        "batch",
    ),
]


async def test_each_bad_input_gets_its_status_and_names_the_field(
    live_kafka: str, topics: Topics
) -> None:
    async with in_process(settings_for(live_kafka, topics)) as client:
        for n, (name, route, request, status, field) in enumerate(CASES):
            response = await client.post(route, auth=AUTH, **request)
            body = response.json()
            assert response.status_code == status, (name, body)
            assert response.headers["content-type"] == "application/json", name
            assert (body["success"], body["field"]) == (False, field), (name, body)
            assert body["reason"], (name, body)
            assert field in body["message"], (name, body)
            # A valid call between the bad ones: it must be written, and only it.
            good = {"userId": "u-good", "event": "Kept", "messageId": f"good-{n}"}
            assert (await client.post("/v1/track", json=good, auth=AUTH)).status_code == 200

    written = await read_topic(live_kafka, topics.events)
    assert sorted(w.event.message_id for w in written) == sorted(
        f"good-{n}" for n in range(len(CASES))
    )


async def test_a_batch_writes_its_valid_calls_and_reports_the_others_by_index(
    live_kafka: str, topics: Topics
) -> None:
    batch = [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "ok-0"},
        {"type": "track", "userId": "u1"},
        {"type": "identify", "userId": "u1", "traits": {"a": 1}, "messageId": "ok-2"},
        {"type": "page", "name": "no ids"},
        {"type": "teleport", "userId": "u1"},
        {"type": "track", "userId": "u1", "event": "B", "timestamp": "when?"},
        {"type": "track", "userId": "u1", "event": "C", "properties": {"x": BIG}},
        {"type": "alias", "userId": "u2", "previousId": "u1", "messageId": "ok-7"},
    ]
    async with in_process(settings_for(live_kafka, topics)) as client:
        response = await client.post("/v1/batch", json={"batch": batch}, auth=AUTH)

    assert response.status_code == 200
    answer = response.json()
    assert (answer["success"], answer["accepted"]) == (True, 3)
    fields = [(r["index"], r["field"]) for r in answer["rejected"]]
    assert fields == [(1, "event"), (3, "userId"), (4, "type"), (5, "timestamp"), (6, "item")]
    assert "32768" in answer["rejected"][-1]["reason"]
    written = await read_topic(live_kafka, topics.events)
    assert sorted(w.event.message_id for w in written) == ["ok-0", "ok-2", "ok-7"]


async def test_hostile_items_are_reported_and_their_neighbours_land(
    live_kafka: str, topics: Topics
) -> None:
    def track(n: int, **fields: Any) -> dict[str, Any]:
        return {"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}", **fields}

    batch = [
        track(0),
        track(1, timestamp="9999-12-31T23:00:00-05:00"),
        track(2, userId="u\x00x"),
        track(3),
        track(4, event="Order Completed", properties={"revenue": 1.7e308}),
        track(5, sentAt="0001-01-01T00:00:00+05:00", timestamp="2026-01-01T00:00:00Z"),
        track(6, messageId="m6\x1f"),
        track(7),
    ]
    async with in_process(settings_for(live_kafka, topics)) as client:
        response = await client.post("/v1/batch", json={"batch": batch}, auth=AUTH)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 3
    fields = [(r["index"], r["field"]) for r in answer["rejected"]]
    assert fields == [
        (1, "timestamp"),
        (2, "userId"),
        (4, "properties.revenue"),
        (5, "sentAt"),
        (6, "messageId"),
    ]
    written = await read_topic(live_kafka, topics.events)
    assert sorted(w.event.message_id for w in written) == ["m0", "m3", "m7"]


async def test_missing_or_wrong_write_keys_get_401(live_kafka: str, topics: Topics) -> None:
    body = {"userId": "u", "event": "E"}
    async with in_process(settings_for(live_kafka, topics)) as client:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("no key", {"json": body}, "writeKey"),
            ("unknown Basic key", {"json": body, "auth": ("nope", "")}, "Authorization"),
            (
                "not Basic",
                {"json": body, "headers": {"authorization": f"Bearer {WRITE_KEY}"}},
                "Authorization",
            ),
            ("unknown body key", {"json": {**body, "writeKey": "nope"}}, "writeKey"),
            ("bad body, no key", {"content": b"{", "headers": JSON}, "writeKey"),
            (
                "a wrong header beats a right body key",
                {"json": {**body, "writeKey": WRITE_KEY}, "auth": ("nope", "")},
                "Authorization",
            ),
        ]
        for name, request, field in cases:
            response = await client.post("/v1/track", **request)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["field"] == field, name
        ok = await client.post("/v1/track", json={**body, "writeKey": WRITE_KEY})
        assert ok.status_code == 200
    assert len(await read_topic(live_kafka, topics.events)) == 1


async def test_more_requests_than_the_rate_limit_get_429_with_retry_after(
    live_kafka: str, topics: Topics
) -> None:
    settings = settings_for(live_kafka, topics, ingest_rate_limit_per_s=0.2, ingest_rate_burst=3)
    async with in_process(settings) as client:
        statuses = []
        for n in range(5):
            body = {"userId": "u", "event": "E", "messageId": f"r-{n}"}
            response = await client.post("/v1/track", json=body, auth=AUTH)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["code"] == "rate_limited"
        # Another key has its own bucket.
        other = await client.post(
            "/v1/track", json={"userId": "u", "event": "E", "writeKey": "wk_other"}
        )
        assert other.status_code == 200
    assert statuses == [200, 200, 200, 429, 429]
    written = await read_topic(live_kafka, topics.events)
    assert sorted(w.event.message_id for w in written if w.event.source != "default") == [
        "r-0",
        "r-1",
        "r-2",
    ]


async def _answer_without_sending_everything(url: str, head: bytes, body_part: bytes) -> bytes:
    """Send the head and part of the body, never the rest; return what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body_part)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversized_body_is_refused_before_it_is_all_read(
    live_kafka: str, topics: Topics, framing: str
) -> None:
    limit = 500 * 1024
    common = (
        f"POST /v1/batch HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n"
        f"authorization: {basic_auth(WRITE_KEY)}\r\n"
    ).encode()
    if framing == "content-length":
        # Declares 10 MB and sends 1 KB: the answer must not wait for the rest.
        head, part = common + b"content-length: 10485760\r\n\r\n", b"{" + b" " * 1023
    else:
        # No length declared: sends just past the limit and never ends the body.
        chunk = b" " * (64 * 1024)
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 1)
        )
        head, part = common + b"transfer-encoding: chunked\r\n\r\n", chunks
    async with served(settings_for(live_kafka, topics)) as url:
        answer = await _answer_without_sending_everything(url, head, part)
    assert answer.startswith(b"HTTP/1.1 413"), answer


async def test_the_error_body_reads_as_segment_sdks_expect(live_kafka: str, topics: Topics) -> None:
    async with in_process(settings_for(live_kafka, topics)) as client:
        response = await client.post("/v1/track", json={"event": "E"}, auth=AUTH)
    body = response.json()
    # Segment's SDKs log `code` and `message` from a 4xx answer.
    assert body == {
        "success": False,
        "code": "invalid_request",
        "message": "userId: track needs userId or anonymousId",
        "field": "userId",
        "reason": "track needs userId or anonymousId",
        "rejected": [],
    }
    assert response.status_code == 400
