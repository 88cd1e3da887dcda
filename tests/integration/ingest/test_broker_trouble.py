"""When Kafka cannot acknowledge: 503 with Retry-After, never 200; memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from shared.topics import Topics
from tests.integration.ingest.support import AUTH, in_process, read_topic, settings_for
from tests.ports import free_port
from tests.waiting import eventually

TRACK = {"userId": "u", "event": "E"}
BATCH = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 5}


async def assert_refused_with_retry_after(client: httpx.AsyncClient, code: str) -> None:
    for route, body in (("/v1/track", TRACK), ("/v1/batch", BATCH)):
        response = await client.post(route, json=body, auth=AUTH)
        assert response.status_code == 503, (route, response.text)
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["code"] == code


async def test_an_unreachable_broker_gets_503_and_not_ready() -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with in_process(settings_for(dead, None)) as client:
        await assert_refused_with_retry_after(client, "broker_unavailable")
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": False, "producer": False}
        metrics = (await client.get("/metrics")).text
        assert "ingest_broker_connected 0.0" in metrics
        # Refused before their bodies were read: counted per request.
        assert 'ingest_events_rejected_total{reason="broker_unavailable"} 2.0' in metrics


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers: a broker that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_broker_that_never_answers_gets_503_after_the_connect_timeout() -> None:
    async with silent_server() as bootstrap:
        settings = settings_for(bootstrap, None, ingest_kafka_connect_timeout_ms=300)
        async with in_process(settings) as client:
            await assert_refused_with_retry_after(client, "broker_unavailable")


async def test_acknowledgements_slower_than_the_timeout_get_503(
    live_kafka: str, topics: Topics
) -> None:
    # Acks take at least the producer's linger (5 ms): a 1 ms budget cannot be met.
    settings = settings_for(live_kafka, topics, ingest_produce_timeout_ms=1)
    async with in_process(settings) as client:
        await assert_refused_with_retry_after(client, "produce_timeout")

        # The events the producer already held are released once it settles them.
        async def in_flight() -> str:
            lines = (await client.get("/metrics")).text.splitlines()
            return next(line for line in lines if line.startswith("ingest_in_flight_events "))

        await eventually(in_flight, until=lambda line: line.endswith(" 0.0"), what="in-flight 0")


async def test_requests_over_the_in_flight_bound_get_503_at_once(
    live_kafka: str, topics: Topics
) -> None:
    settings = settings_for(live_kafka, topics, ingest_max_in_flight_events=5)
    async with in_process(settings) as client:
        # Warm the producer's metadata so the first request does not hold the budget alone.
        assert (await client.post("/v1/track", json=TRACK, auth=AUTH)).status_code == 200

        async def batch(n: int) -> httpx.Response:
            calls = [
                {"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}-{i}"}
                for i in range(5)
            ]
            return await client.post("/v1/batch", json={"batch": calls}, auth=AUTH)

        responses = await asyncio.gather(*(batch(n) for n in range(20)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.json()["code"] == "overloaded"
            assert int(response.headers["retry-after"]) >= 1
    written = await read_topic(live_kafka, topics.events)
    accepted = {n for n, r in enumerate(responses) if r.status_code == 200}
    assert sorted(w.event.message_id for w in written if w.event.message_id.startswith("m")) == (
        sorted(f"m{n}-{i}" for n in accepted for i in range(5))
    )


@contextlib.asynccontextmanager
async def forwarder(port: int, target: str) -> AsyncIterator[None]:
    """A TCP relay from 127.0.0.1:port to target: the broker "comes back" when it starts."""
    target_host, target_port = target.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target_host, int(target_port))
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            tasks.add(asyncio.create_task(task))

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in tasks:
            task.cancel()


async def test_the_service_reconnects_when_the_broker_becomes_reachable(
    live_kafka: str, topics: Topics
) -> None:
    port = free_port()
    settings = settings_for(f"127.0.0.1:{port}", topics, ingest_kafka_reconnect_max_backoff_ms=200)
    async with in_process(settings) as client:
        await assert_refused_with_retry_after(client, "broker_unavailable")
        async with forwarder(port, live_kafka):

            async def track() -> int:
                response = await client.post("/v1/track", json=TRACK, auth=AUTH)
                assert response.status_code in (200, 503), response.text
                return response.status_code

            await eventually(track, until=lambda status: status == 200, what="200 after reconnect")
            assert (await client.get("/readyz")).status_code == 200
