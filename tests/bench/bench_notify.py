"""Notifier benchmark (`make bench-notify`): actions/s against a provider answering after 50 ms.

The notifier (`python -m notifier`, a subprocess) serves one rule, one SMS per
`silent` transition, to the dev HTTP sink (`python -m notifier.devsink
--delay-ms 50`, another subprocess), at NOTIFIER_CONCURRENCY (default 64).

  1. throughput: a backlog of transitions, drained; actions/s from the first to
     the last send (the outcomes' times) against 0.8 x (concurrency / 0.05 s);
  2. latency: transitions produced at half the measured rate for a few seconds;
     p50/p99 from a transition's time (stamped at produce) to its send.

BENCH_ALSO_AT=16,32 first measures the throughput alone at those concurrencies
too (a fresh notifier each), and prints each ratio of actions/s to concurrency /
0.05 s; only the configured concurrency decides the exit status.

Real broker, real PostgreSQL (a fresh database, dropped afterwards), fresh
topics (deleted). Bounded: well under 2 minutes. The CPU seconds used by the
notifier and the sink are printed, since they share 2 cores with everything.
Exit status 1 when the throughput misses the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import yaml
from aiokafka import TopicPartition

from shared.codec import encode
from shared.kafka.consumer import make_consumer
from shared.kafka.producer import make_producer
from shared.topics import Topics
from shared.transitions import Profile, Stage, Transition, TransitionData, TransitionKind
from tests.bench.procfs import cpu_seconds
from tests.ports import free_port
from tests.scratch import scratch_database, scratch_topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5433/lifecycle"
)
CONCURRENCY = int(os.environ.get("NOTIFIER_CONCURRENCY", "64"))
ALSO_AT = [int(c) for c in os.environ.get("BENCH_ALSO_AT", "").split(",") if c.strip()]
SINK_DELAY_S = 0.05
PARTITIONS = 6


def target_per_s(concurrency: int) -> float:
    return 0.8 * concurrency / SINK_DELAY_S


def throughput_backlog(concurrency: int) -> int:
    return int(min(20_000, max(2_000, target_per_s(concurrency) * 12)))


THROUGHPUT_DEADLINE_S = 60.0
LATENCY_PHASE_S = 8.0
PLAYBOOK = {
    "holdout_share": 0.0,
    "quiet_hours": {"channels": []},
    "rules": [
        {
            "name": "wakeup",
            "match": {"kind": "stage_changed", "to_stage": "silent"},
            "actions": [{"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}}],
        }
    ],
}


def silent(user_id: str, at: datetime) -> Transition:
    profile = Profile(
        stage=Stage.SILENT,
        stage_since=at,
        first_seen_at=at - timedelta(days=30),
        traits={"phone": "+8613800000000", "email": f"{user_id}@example.com"},
    )
    data = TransitionData(
        user_id=user_id,
        kind=TransitionKind.STAGE_CHANGED,
        from_stage=Stage.ACTIVE,
        to_stage=Stage.SILENT,
        reason="inactivity",
        profile=profile,
    )
    return Transition.build(data, at, discriminator="silent")


@contextlib.asynccontextmanager
async def process(*args: str, env: dict[str, str], log: Path) -> AsyncIterator[int]:
    with log.open("wb") as out:
        child = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, stdout=out, stderr=out
        )
    try:
        yield child.pid
    finally:
        if child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), timeout=20)
            except TimeoutError:
                child.kill()
                await child.wait()


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_for(probe_url: str, *, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(probe_url, timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.2)  # polling a starting process, bounded by the deadline
    raise RuntimeError(f"{probe_url} not ready in {timeout_s}s:\n{read_log(log)[-2000:]}")


async def sink_url(log: Path, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := re.search(r"http://127\.0\.0\.1:\d+", read_log(log)):
            return found[0]
        await asyncio.sleep(0.05)  # waiting for the sink's banner, bounded by the deadline
    raise RuntimeError(f"the dev sink printed no URL: {read_log(log)!r}")


class Outcomes:
    """Reads the notifications topic: send time per transition id."""

    def __init__(self, topic: str) -> None:
        self._consumer = make_consumer(BOOTSTRAP, group_id=None, client_id="bench-outcomes")
        self._partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.sent_at: dict[str, datetime] = {}
        self.other = 0

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read_until(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.sent_at) < count and time.monotonic() < deadline:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                for record in records:
                    outcome = orjson.loads(record.value or b"{}")
                    if outcome.get("result") == "sent":
                        at = datetime.fromisoformat(outcome["occurred_at"])
                        self.sent_at[outcome["transition_id"]] = at
                    else:
                        self.other += 1


def encoded(transitions: list[Transition]) -> list[tuple[bytes, bytes]]:
    """(key, value) per transition, encoded before any timing starts: the load generator's
    pydantic work is not the notifier's and would only take CPU from it during the drain."""
    return [(t.data.user_id.encode(), encode(t)) for t in transitions]


async def produce(records: list[tuple[bytes, bytes]], topic: str) -> None:
    producer = make_producer(BOOTSTRAP, client_id="bench-notify")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def produce_at_rate(topic: str, rate_per_s: float, duration_s: float) -> dict[str, datetime]:
    """Transitions stamped with the wall time they are produced; returns id -> that time."""
    producer = make_producer(BOOTSTRAP, client_id="bench-notify-paced")
    await producer.start()
    stamped: dict[str, datetime] = {}
    started = time.monotonic()
    try:
        sent = 0
        while (elapsed := time.monotonic() - started) < duration_s:
            due = int(elapsed * rate_per_s) - sent
            for _ in range(due):
                now = datetime.now(UTC)
                transition = silent(f"lat-{sent}", now)
                stamped[transition.id] = now
                await producer.send(topic, encode(transition), key=transition.data.user_id.encode())
                sent += 1
            await asyncio.sleep(0.005)  # the load generator's tick, not a synchronisation
        await producer.flush()
    finally:
        await producer.stop()
    return stamped


async def bench(workdir: Path, concurrency: int, *, latency: bool) -> tuple[int, float]:
    """(exit status, actions/s)."""
    async with (
        scratch_database(DATABASE_URL, prefix="bench_notify") as database_url,
        scratch_topics(BOOTSTRAP, partitions=PARTITIONS, prefix="bench-notify-") as topics,
    ):
        playbook = workdir / "playbook.yaml"
        playbook.write_text(yaml.safe_dump(PLAYBOOK))
        port = free_port()
        base_env = {**os.environ, "LOG_LEVEL": "WARNING"}
        sink_log = workdir / "sink.log"
        async with process(
            "-m",
            "notifier.devsink",
            "--port",
            "0",
            "--delay-ms",
            str(int(SINK_DELAY_S * 1000)),
            env=base_env,
            log=sink_log,
        ) as sink_pid:
            url = await sink_url(sink_log)
            env = {
                **base_env,
                "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
                "DATABASE_URL": database_url,
                "TOPIC_EVENTS": topics.events,
                "TOPIC_TRANSITIONS": topics.transitions,
                "TOPIC_NOTIFICATIONS": topics.notifications,
                "TOPIC_PARTITIONS": str(PARTITIONS),
                "PLAYBOOK_CONFIG": str(playbook),
                "NOTIFIER_PORT": str(port),
                "NOTIFIER_GROUP": f"{topics.transitions}.notifier",
                "NOTIFIER_SMS_URL": f"{url}/sms",
                "NOTIFIER_CONCURRENCY": str(concurrency),
            }
            notifier_log = workdir / "notifier.log"
            async with process("-m", "notifier", env=env, log=notifier_log) as notifier_pid:
                await wait_for(f"http://127.0.0.1:{port}/readyz", log=notifier_log)
                outcomes = Outcomes(topics.notifications)
                await outcomes.start()
                try:
                    return await measure(
                        topics, outcomes, notifier_pid, sink_pid, concurrency, latency=latency
                    )
                finally:
                    await outcomes.stop()
    return 1, 0.0


async def measure(
    topics: Topics,
    outcomes: Outcomes,
    notifier_pid: int,
    sink_pid: int,
    concurrency: int,
    *,
    latency: bool,
) -> tuple[int, float]:
    now = datetime.now(UTC)
    await produce(encoded([silent(f"warm-{n}", now) for n in range(200)]), topics.transitions)
    await outcomes.read_until(200, timeout_s=60)
    if len(outcomes.sent_at) < 200:
        print(f"warm-up: only {len(outcomes.sent_at)} of 200 sent in 60 s")
        return 1, 0.0

    target = target_per_s(concurrency)
    backlog = [silent(f"tp-{n}", now) for n in range(throughput_backlog(concurrency))]
    backlog_records = encoded(backlog)
    cpu_before = cpu_seconds(notifier_pid), cpu_seconds(sink_pid)
    started = time.monotonic()
    await produce(backlog_records, topics.transitions)
    await outcomes.read_until(200 + len(backlog), timeout_s=THROUGHPUT_DEADLINE_S)
    wall_s = time.monotonic() - started
    cpu_notifier = cpu_seconds(notifier_pid) - cpu_before[0]
    cpu_sink = cpu_seconds(sink_pid) - cpu_before[1]
    times = sorted(outcomes.sent_at[t.id] for t in backlog if t.id in outcomes.sent_at)
    span_s = max((times[-1] - times[0]).total_seconds(), 1e-3) if len(times) > 1 else wall_s
    rate = len(times) / span_s
    verdict = "meets" if rate >= target and len(times) == len(backlog) else "MISSES"
    print(f"notifier concurrency {concurrency}, sink answering after {SINK_DELAY_S * 1000:.0f} ms")
    print(
        f"throughput: {len(times)}/{len(backlog)} actions sent, {rate:,.0f} actions/s "
        f"(target {target:,.0f} = 0.8 x {concurrency} / 0.05 s): {verdict} the target"
    )
    print(
        f"  CPU during the drain ({wall_s:.1f} s wall): notifier {cpu_notifier:.1f} s, "
        f"dev sink {cpu_sink:.1f} s, on {os.cpu_count()} cores shared with the broker, "
        "PostgreSQL and whatever else runs"
    )

    status = 0 if verdict == "meets" else 1
    if not latency:
        return status, rate
    paced_rate = max(10.0, 0.5 * min(rate, target))
    stamped = await produce_at_rate(topics.transitions, paced_rate, LATENCY_PHASE_S)
    await outcomes.read_until(200 + len(backlog) + len(stamped), timeout_s=30)
    latencies = sorted(
        (outcomes.sent_at[tid] - at).total_seconds()
        for tid, at in stamped.items()
        if tid in outcomes.sent_at
    )
    if len(latencies) < 20:
        print(f"latency: only {len(latencies)} sends observed")
        return 1, rate
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"latency at {paced_rate:,.0f} transitions/s: transition-to-send p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms ({len(latencies)} sends; includes the sink's 50 ms)"
    )
    return status, rate


def main() -> int:
    workdir = Path(os.environ.get("BENCH_DIR", f"/tmp/bench-notify-{uuid.uuid4().hex[:6]}"))
    started = time.monotonic()
    rates: dict[int, float] = {}
    for concurrency in [c for c in ALSO_AT if c != CONCURRENCY]:
        (workdir / f"c{concurrency}").mkdir(parents=True, exist_ok=True)
        _, rates[concurrency] = asyncio.run(
            bench(workdir / f"c{concurrency}", concurrency, latency=False)
        )
    workdir.mkdir(parents=True, exist_ok=True)
    code, rates[CONCURRENCY] = asyncio.run(bench(workdir, CONCURRENCY, latency=True))
    if len(rates) > 1:
        ratios = ", ".join(
            f"{c}: {rate / (c / SINK_DELAY_S):.2f}" for c, rate in sorted(rates.items())
        )
        print(f"actions/s / (concurrency / 0.05 s), by concurrency: {ratios} (target 0.80)")
    print(f"(bench took {time.monotonic() - started:.0f} s; logs in {workdir})")
    return code


if __name__ == "__main__":
    sys.exit(main())
