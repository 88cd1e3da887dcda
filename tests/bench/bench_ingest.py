"""Ingest benchmark (`make bench-ingest`): in one run, on loopback, against the real broker,

  (a) a raw aiokafka producer loop sending the same serialized events (our stack's ceiling),
  (b) POST /v1/batch with 100 events per request,
  (c) single POST /v1/track requests: the maximum rate, then p99 at 70 % of it,

printing events/s, p50 and p99 latency, each as a ratio to (a), and the ingest
process's peak RSS (VmHWM). Ingest runs as a subprocess (`python -m ingest`,
uvloop + httptools) on a free port, writing to a fresh topic deleted afterwards.

Load generator: a minimal HTTP/1.1 client on asyncio + uvloop with keep-alive
connections and pre-built requests (tens of microseconds per request), in this
process. It shares the 2 cores with ingest and the broker: the CPU seconds each
used are printed, so it shows which one was the bottleneck.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import uvloop
from aiokafka.admin import AIOKafkaAdminClient
from ingest.models import TrackRequest
from ingest.normalise import Envelope, to_event
from pydantic import TypeAdapter

from shared.codec import encode
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import make_producer
from tests.bench.procfs import cpu_seconds, status_kb
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
WRITE_KEY = "bench-key"
PARTITIONS = 12
BATCH_SIZE = 100
RAW_EVENTS = 150_000
PHASE_S = 8.0  # each HTTP phase
BATCH_CONNECTIONS = 8
# Events the raw loop keeps unacknowledged at most: as many as (b) has in flight.
TRACK_CONNECTIONS = 32
TARGET_FRACTION = 0.7
RAW_WINDOW = BATCH_CONNECTIONS * BATCH_SIZE


# ---------------------------------------------------------------- test data


def calls(count: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    names = ["Product Viewed", "Added To Cart", "Order Completed", "Signed In", "Searched"]
    return [
        {
            "userId": f"user-{rng.randrange(50_000)}",
            "event": rng.choice(names),
            "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
            "timestamp": "2026-01-05T09:30:00.000Z",
            "sentAt": "2026-01-05T09:30:01.000Z",
            "properties": {
                "sku": f"SKU-{rng.randrange(1000)}",
                "price": round(rng.uniform(1, 500), 2),
                "currency": "CNY",
                "quantity": rng.randrange(1, 5),
            },
            "context": {
                "library": {"name": "analytics-python", "version": "2.4.0"},
                "ip": "10.1.2.3",
                "locale": "zh-CN",
            },
        }
        for _ in range(count)
    ]


def serialized_events(sample: list[dict[str, object]]) -> list[tuple[bytes, bytes]]:
    """The (key, value) records ingest itself would write for these calls."""
    adapter = TypeAdapter(TrackRequest)
    envelope = Envelope(received_at=datetime.now(UTC), source="bench")
    events = [to_event(adapter.validate_python(c), "track", envelope) for c in sample]
    return [(e.partition_key.encode(), encode(e)) for e in events]


def http_request(path: str, body: bytes) -> bytes:
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---------------------------------------------------------------- measurements


@dataclass
class Result:
    name: str
    events: int
    elapsed_s: float
    latencies_s: list[float]
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.elapsed_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def raw_producer(records: list[tuple[bytes, bytes]], topic: str) -> Result:
    producer = make_producer(BOOTSTRAP, client_id="bench-raw")
    await producer.start()
    latencies: list[float] = []
    try:
        await producer.send_and_wait(topic, records[0][1], key=records[0][0])  # metadata
        pending: list[asyncio.Future[object]] = []
        started = time.perf_counter()
        for n in range(RAW_EVENTS):
            key, value = records[n % len(records)]
            sent_at = time.perf_counter()
            future = await producer.send(topic, value, key=key)
            future.add_done_callback(
                lambda _f, t=sent_at: latencies.append(time.perf_counter() - t)
            )
            pending.append(future)
            if len(pending) >= RAW_WINDOW:
                await asyncio.gather(*pending[: RAW_WINDOW // 2])
                del pending[: RAW_WINDOW // 2]
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return Result("(a) raw aiokafka producer", RAW_EVENTS, elapsed, latencies)


class Connection:
    """One keep-alive HTTP/1.1 connection; requests are pre-built bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at)])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    port: int, requests: list[bytes], connections: int, events_per_request: int, name: str
) -> Result:
    """Each connection sends as fast as answers come back, for PHASE_S seconds."""
    conns = [await Connection.open(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + PHASE_S

    async def worker(conn: Connection, offset: int) -> None:
        nonlocal errors
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await conn.send(requests[n % len(requests)])
            latencies.append(time.perf_counter() - started)
            errors += status != 200
            n += connections

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    ok = len(latencies) - errors
    return Result(name, ok * events_per_request, elapsed, latencies, errors)


async def open_loop(port: int, requests: list[bytes], rate_per_s: float, name: str) -> Result:
    """Requests at a fixed rate; latency counts from the scheduled send time.

    (Counting from the scheduled time, not the actual one, keeps a stalled
    server from hiding its stall: no coordinated omission.)
    """
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(TRACK_CONNECTIONS * 2):
        idle.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        status = await conn.send(request)
        latencies.append(time.perf_counter() - scheduled)
        errors += status != 200
        idle.put_nowait(conn)

    total = int(rate_per_s * PHASE_S)
    interval = 1.0 / rate_per_s
    started = time.perf_counter()
    for n in range(total):
        scheduled = started + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the open-loop load
        task = asyncio.create_task(one(requests[n % len(requests)], scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait().close()
    return Result(name, len(latencies) - errors, elapsed, latencies, errors)


# ---------------------------------------------------------------- the ingest process


@contextlib.contextmanager
def ingest_process(port: int, prefix: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "INGEST_PORT": str(port),
        "HTTP_HOST": "127.0.0.1",
        "INGEST_WRITE_KEYS": f"{WRITE_KEY}:bench",
        "INGEST_RATE_LIMIT_PER_S": "1000000000",
        "INGEST_RATE_BURST": "1000000000",
        "TOPIC_EVENTS": f"{prefix}.events",
        "TOPIC_TRANSITIONS": f"{prefix}.transitions",
        "TOPIC_NOTIFICATIONS": f"{prefix}.notifications",
        "TOPIC_PARTITIONS": str(PARTITIONS),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "ingest"], env=env, cwd=ROOT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ingest exited with {process.returncode}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: ingest\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                return
        await asyncio.sleep(0.2)  # polling readiness, bounded by the deadline
    raise RuntimeError("ingest did not become ready within 60 s")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- the run


def report(results: list[Result], ceiling: Result, cpu: dict[str, tuple[float, float]]) -> None:
    a50, a99 = ceiling.percentile_ms(0.5), ceiling.percentile_ms(0.99)
    print(
        f"\n{'':46} {'events/s':>10} {'x (a)':>7} {'p50 ms':>8} {'x (a)':>7} "
        f"{'p99 ms':>8} {'x (a)':>7} {'errors':>6}  CPU s ingest/client, CPU us/event"
    )
    for r in results:
        p50, p99 = r.percentile_ms(0.5), r.percentile_ms(0.99)
        ingest_cpu, client_cpu = cpu.get(r.name, (0.0, 0.0))
        # The raw loop runs in this process: its CPU per event is the client's.
        per_event_us = (ingest_cpu or client_cpu) / max(1, r.events) * 1e6
        print(
            f"{r.name:46} {r.rate:10.0f} {r.rate / ceiling.rate:7.2f} {p50:8.2f} "
            f"{p50 / a50:7.2f} {p99:8.2f} {p99 / a99:7.2f} {r.errors:6d}  "
            f"{ingest_cpu:5.1f} / {client_cpu:4.1f} in {r.elapsed_s:4.1f} s, {per_event_us:5.0f}"
        )


async def delete_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def run() -> None:
    began = time.perf_counter()
    prefix = f"bench.ingest.{uuid.uuid4().hex[:8]}"
    sample = calls(5_000)
    records = serialized_events(sample)
    await ensure_topics(BOOTSTRAP, [f"{prefix}.events"], partitions=PARTITIONS)
    print(f"ingest benchmark: topic {prefix}.events ({PARTITIONS} partitions), broker {BOOTSTRAP}")
    print(f"event size {statistics.mean(len(v) for _, v in records):.0f} bytes (Kafka value)")
    print(f"load generator: one in-process asyncio+uvloop HTTP/1.1 client (pid {os.getpid()})")

    cpu: dict[str, tuple[float, float]] = {}
    own = own_cpu_seconds()
    ceiling = await raw_producer(records, f"{prefix}.events")
    cpu[ceiling.name] = (0.0, own_cpu_seconds() - own)
    results = [ceiling]

    batches = [
        http_request("/v1/batch", orjson.dumps({"batch": [{**c, "type": "track"} for c in chunk]}))
        for chunk in (sample[i : i + BATCH_SIZE] for i in range(0, len(sample), BATCH_SIZE))
    ]
    tracks = [http_request("/v1/track", orjson.dumps(c)) for c in sample]
    port = free_port()
    try:
        with ingest_process(port, prefix) as process:
            await wait_ready(port, process)

            async def measured(coroutine: object) -> Result:
                before = (cpu_seconds(process.pid), own_cpu_seconds())
                result: Result = await coroutine  # type: ignore[misc]
                cpu[result.name] = (
                    cpu_seconds(process.pid) - before[0],
                    own_cpu_seconds() - before[1],
                )
                return result

            results.append(
                await measured(
                    closed_loop(port, batches, BATCH_CONNECTIONS, BATCH_SIZE, "(b) /v1/batch x100")
                )
            )
            track_max = await measured(
                closed_loop(port, tracks, TRACK_CONNECTIONS, 1, "(c) /v1/track, max rate")
            )
            results.append(track_max)
            target = TARGET_FRACTION * track_max.rate
            results.append(
                await measured(
                    open_loop(port, tracks, target, f"(c) /v1/track at 70% ({target:.0f}/s)")
                )
            )
            peak_rss_kb = status_kb(process.pid, "VmHWM")
            rss_kb = status_kb(process.pid, "VmRSS")
    finally:
        await delete_topics(prefix)

    report(results, ceiling, cpu)
    busiest = max(cpu[r.name][1] / r.elapsed_s for r in results[1:])
    print(
        f"load generator used at most {busiest:.0%} of a core in the HTTP phases "
        f"({'it may have been the bottleneck' if busiest > 0.8 else 'not the bottleneck'})"
    )
    batch, track70 = results[1], results[3]
    peak_mib, end_mib = peak_rss_kb / 1024, rss_kb / 1024
    print(f"\ningest peak RSS (VmHWM): {peak_mib:.1f} MiB (at the end: {end_mib:.1f} MiB)")
    print(
        f"targets: (b) >= 0.5 x (a): {batch.rate / ceiling.rate:.2f} x; (b) >= 20000 events/s: "
        f"{batch.rate:.0f}; (c) p99 <= 20 ms at 70 %: {track70.percentile_ms(0.99):.2f} ms"
    )
    print(f"load average: {os.getloadavg()[0]:.2f}; total run {time.perf_counter() - began:.0f} s")


def main() -> None:
    uvloop.run(run())


if __name__ == "__main__":
    main()
