"""Executing planned actions from the ledger with a fixed pool of senders.

  claimer  --(claimed jobs, never more than `concurrency` in flight)-->  senders
  senders  --(results, bounded queue)-->  writer: one transaction per flush

Nothing is held only in memory: a job is a leased row, a result is re-done
(same idempotency key) if the process dies before the writer commits it.

SMTP has no idempotency key: an email whose "250 OK" came back but whose result
was not committed before a crash is sent again (same Message-ID, so receivers can
drop it). To keep that window narrow, an email sender waits until its result is
committed before it takes its next job, and the writer commits such results
without lingering: at any moment each sender holds at most one accepted but
unrecorded mail, so a crash re-sends at most `concurrency` mails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.claims import Job, claim_due
from notifier.metrics import NotifierMetrics
from notifier.results import Result, Verdict, write_results
from notifier.send import Sender
from notifier.store import tables as t
from notifier.store.held import HeldConnection
from shared.clock import Clock

log = logging.getLogger(__name__)

_FLUSH_MAX_RESULTS = 256
# Let concurrent senders share one commit: at a thousand results a second, 30 ms
# gathers some thirty per transaction (a retry or outcome waits that much longer).
_FLUSH_LINGER_S = 0.03
_GAUGE_INTERVAL_S = 5.0
# Channels whose provider cannot de-duplicate a repeat (no Idempotency-Key): their
# senders wait for each result to be durable before the next send.
RECORD_BEFORE_NEXT = frozenset({"email"})


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    concurrency: int
    lease: timedelta
    poll_interval_s: float


class Executor:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sender: Sender,
        clock: Clock,
        config: ExecutorConfig,
        metrics: NotifierMetrics,
        on_recorded: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._claims = HeldConnection(engine)
        self._writes = HeldConnection(engine)
        self._sender = sender
        self._clock = clock
        self._config = config
        self._metrics = metrics
        self._on_recorded = on_recorded
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        # A result, and for RECORD_BEFORE_NEXT channels the future its sender waits on.
        self._results: asyncio.Queue[tuple[Result, asyncio.Future[None] | None]] = asyncio.Queue(
            maxsize=config.concurrency * 2
        )
        self._in_flight = 0  # claimed and not yet done: queued for a sender, or sending
        # Claimed work runs ahead of the senders by up to one round of `concurrency`, so a
        # freed sender takes its next job at once instead of waiting for a claim round trip.
        self._max_in_flight = 2 * config.concurrency
        # Claim when half a round is free: fewer, larger claims, and still a half round
        # queued ahead of the senders while the claim runs.
        self._refill_at = max(1, config.concurrency // 2)
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()

    def wake(self) -> None:
        """New actions were planned (or unblocked): look for due work now."""
        self._wake.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._claim_loop(), name="notifier-claimer")
                group.create_task(self._write_loop(), name="notifier-writer")
                group.create_task(self._gauge_loop(), name="notifier-gauges")
                for number in range(self._config.concurrency):
                    group.create_task(self._send_loop(), name=f"notifier-sender-{number}")
        finally:
            await self._claims.close()
            await self._writes.close()

    async def _claim_loop(self) -> None:
        while True:
            free = self._max_in_flight - self._in_flight
            if free < self._refill_at:
                # Wait until several jobs are done, so one claim fills several slots.
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            async with self._claims.begin() as conn:
                jobs = await claim_due(
                    conn,
                    limit=free,
                    policy_now=self._clock.now(),
                    wall_now=datetime.now(UTC),
                    lease=self._config.lease,
                )
            # Killed here: the claimed rows are leased; after the lease they are claimed again.
            if not jobs:
                await _wait(self._wake, self._config.poll_interval_s)
                continue
            self._in_flight += len(jobs)
            for job in jobs:
                self._jobs.put_nowait(job)

    async def _send_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                result = await self._sender.execute(job)
            finally:
                self._in_flight -= 1
                self._slot_free.set()
            if result is None:
                continue
            if job.ref.channel not in RECORD_BEFORE_NEXT:
                await self._results.put((result, None))
                continue
            recorded = asyncio.get_running_loop().create_future()
            await self._results.put((result, recorded))
            # Killed before the writer commits this result: the mail is sent again after
            # the lease, and this sender had no other unrecorded mail (it waits here).
            await recorded

    async def _write_loop(self) -> None:
        while True:
            items = [await self._results.get()]
            if items[0][1] is None:
                # Let concurrent results join this commit; a sender waiting on its
                # result (an email) is not kept waiting, and its window stays short.
                await asyncio.sleep(_FLUSH_LINGER_S)
            while len(items) < _FLUSH_MAX_RESULTS and not self._results.empty():
                items.append(self._results.get_nowait())
            batch = [result for result, _ in items]
            async with self._writes.begin() as conn:
                accepted = await write_results(conn, batch)
            # Killed here: the results are committed; the relay publishes their outcomes.
            for _, recorded in items:
                if recorded is not None and not recorded.done():
                    recorded.set_result(None)
            self._count(accepted)
            if len(accepted) < len(batch):
                log.warning(
                    "dropped results of stale claims (lease lapsed, action claimed again)",
                    extra={"dropped": len(batch) - len(accepted)},
                )
            self._on_recorded()
            if any(r.coupon is not None for r in accepted):
                self.wake()  # messages waiting for these coupons may go now

    def _count(self, accepted: list[Result]) -> None:
        for result in accepted:
            channel = result.job.ref.channel
            self._metrics.actions.labels(channel, result.verdict.value).inc()
            if result.coupon is not None:
                self._metrics.coupons_issued.inc()
            if result.verdict == Verdict.FAILED:
                self._metrics.actions_dead_lettered.labels(channel).inc()

    async def _gauge_loop(self) -> None:
        a = t.actions.c
        query = select(
            func.count(),
            # A retry is scheduled with the transient error as its reason.
            func.count().filter(a.reason.is_not(None)),
        ).where(a.status == t.PENDING)
        while True:
            async with self._engine.connect() as conn:
                pending, retrying = (await conn.execute(query)).one()
            self._metrics.pending_actions.set(pending)
            self._metrics.pending_retries.set(retrying)
            await asyncio.sleep(_GAUGE_INTERVAL_S)  # a gauge refresh period, not a sync


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
    # that races with the event, and the loop would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
