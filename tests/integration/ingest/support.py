"""Run ingest in the test (in-process ASGI or a real socket) and read back what it wrote."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn
from aiokafka import TopicPartition
from ingest.app import create_app
from ingest.settings import IngestSettings

from shared.codec import decode
from shared.events import Event
from shared.kafka.consumer import make_consumer
from shared.topics import Topics

WRITE_KEY = "wk_test"
SOURCE = "test-web"
OTHER_KEY = "wk_other"  # source "default"
AUTH = (WRITE_KEY, "")


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def settings_for(bootstrap: str, topics: Topics | None, **overrides: object) -> IngestSettings:
    fields: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "ingest_write_keys": f"{WRITE_KEY}:{SOURCE},{OTHER_KEY}",
        "topic_partitions": 3,
        "ingest_kafka_connect_timeout_ms": 5000,
    }
    if topics is not None:
        fields |= {
            "topic_events": topics.events,
            "topic_transitions": topics.transitions,
            "topic_notifications": topics.notifications,
        }
    fields |= overrides
    return IngestSettings.model_validate(fields)


@contextlib.asynccontextmanager
async def in_process(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, called through ASGI without a socket."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@contextlib.asynccontextmanager
async def served(settings: IngestSettings) -> AsyncIterator[str]:
    """The app served by uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, lifespan="on", http="httptools"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not server.started:
            if task.done() or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            await asyncio.sleep(0.02)  # polling the server's started flag, bounded
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@dataclass(frozen=True, slots=True)
class Written:
    key: str
    event: Event


async def read_topic(bootstrap: str, topic: str, *, partitions: int = 3) -> list[Written]:
    """Everything on `topic` up to its current end: call after the writes were acknowledged."""
    consumer = make_consumer(bootstrap, group_id=None, client_id="ingest-test-reader")
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        end = await consumer.end_offsets(assigned)
        await consumer.seek_to_beginning(*assigned)
        written: list[Written] = []
        remaining = {tp for tp in assigned if end[tp] > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while remaining:
            if loop.time() > deadline:
                raise AssertionError(f"could not read {topic} to its end within 30 s")
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                written.extend(
                    Written(key=(r.key or b"").decode(), event=decode(Event, r.value))
                    for r in records
                    if r.offset < end[tp]
                )
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return written
    finally:
        await consumer.stop()
