"""How the simulator and importer treat ingest's answers: retry, give up, or report items."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest
from simulator.ingest_client import IngestClient, IngestError, IngestUnavailableError

ITEMS = [{"type": "track", "userId": "u1", "event": "A", "messageId": "m1"}] * 3


def client(answers: list[httpx.Response], seen: list[httpx.Request]) -> IngestClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return IngestClient(
        "http://ingest.test",
        "wk",
        transport=httpx.MockTransport(handler),
        max_attempts=3,
        backoff_base_s=0.001,
        backoff_max_s=0.002,
    )


async def test_a_batch_is_posted_with_basic_auth_and_retried_after_503() -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"success": True}),
    ]
    async with client(answers, seen) as ingest:
        result = await ingest.send_batch(ITEMS)
    assert (result.sent, result.accepted, result.rejected) == (3, 3, ())
    assert len(seen) == 2
    assert seen[0].url.path == "/v1/batch"
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"wk:").decode()
    assert orjson.loads(seen[1].content) == {"batch": ITEMS}


async def test_items_refused_in_a_batch_are_returned_by_index() -> None:
    seen: list[httpx.Request] = []
    body = {"success": False, "errors": [{"index": 1, "field": "timestamp", "reason": "bad"}]}
    async with client([httpx.Response(400, json=body)], seen) as ingest:
        result = await ingest.send_batch(ITEMS)
    assert result.accepted == 2
    assert [(e.index, e.reason) for e in result.rejected] == [(1, "timestamp: bad")]


async def test_a_wrong_write_key_is_not_retried() -> None:
    seen: list[httpx.Request] = []
    async with client([httpx.Response(401, json={"detail": "bad key"})], seen) as ingest:
        with pytest.raises(IngestError, match="401"):
            await ingest.send_batch(ITEMS)
    assert len(seen) == 1


async def test_ingest_that_stays_unavailable_ends_in_a_clear_error() -> None:
    seen: list[httpx.Request] = []
    async with client([httpx.Response(503)] * 3, seen) as ingest:
        with pytest.raises(IngestUnavailableError, match="after 3 attempts"):
            await ingest.send_batch(ITEMS)
    assert len(seen) == 3
