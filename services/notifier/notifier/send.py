"""One claimed action -> one channel call -> a Result (sent, skipped, retry or failed)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from notifier.backoff import Backoff
from notifier.channels.base import (
    Channel,
    ChannelResult,
    Delivery,
    PermanentChannelError,
    TransientChannelError,
)
from notifier.claims import Job
from notifier.decisions import REASON_CONSENT, consent_allows
from notifier.metrics import NotifierMetrics
from notifier.playbook import PlannedAction
from notifier.recent import RecentTransitions
from notifier.results import Result, Verdict
from shared.clock import Clock
from shared.transitions import Transition

log = logging.getLogger(__name__)

# Room left in a lease after the send for the writer to record the result.
LEASE_MARGIN = timedelta(seconds=1)


class Sender:
    def __init__(
        self,
        *,
        channels: Mapping[str, Channel],
        clock: Clock,
        backoff: Backoff,
        max_attempts: int,
        metrics: NotifierMetrics,
        rng: random.Random | None = None,
        recent: RecentTransitions | None = None,
    ) -> None:
        self._channels = channels
        self._clock = clock
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._recent = recent or RecentTransitions(max_entries=0)

    async def execute(self, job: Job) -> Result | None:
        """None: the lease ran out before the send could start; the next claim does it."""
        ready = self._prepare(job)
        if not isinstance(ready, Delivery):
            return ready
        channel = self._channels[job.ref.channel]
        budget_s = (job.lease_until - LEASE_MARGIN - datetime.now(UTC)).total_seconds()
        if budget_s <= 0:
            return None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget_s):
                sent = await channel.send(ready)
        except Exception as exc:  # noqa: BLE001 - classified just below; none stops the loop
            return self._failure(job, exc, budget_s)
        finally:
            self._metrics.send_seconds.labels(job.ref.channel).observe(
                time.perf_counter() - started
            )
        return self._sent(job, ready.transition, sent)

    def _failure(self, job: Job, error: Exception, budget_s: float) -> Result:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Shutting down: a library turned our cancellation into its own error.
            # Re-raise so the sender stops; the action's lease lapses and it is retried.
            raise asyncio.CancelledError from error
        if isinstance(error, PermanentChannelError):
            return self._result(job, Verdict.FAILED, f"permanent: {error}")
        if isinstance(error, TransientChannelError):
            return self._retry_or_fail(job, str(error), error.retry_after_s)
        if isinstance(error, TimeoutError):
            return self._retry_or_fail(job, f"no answer within the lease ({budget_s:.1f}s)", None)
        # A channel bug must not stop everyone's messages: it is retried with backoff,
        # then dead-lettered, and logged with its traceback for someone to fix.
        log.error(
            "channel raised an unexpected error",
            extra={"channel": job.ref.channel},
            exc_info=error,
        )
        return self._retry_or_fail(job, f"unexpected {type(error).__name__}: {error}", None)

    def _prepare(self, job: Job) -> Delivery | Result:
        """The delivery to make, or the result that makes a send pointless."""
        if job.attempt > self._max_attempts:
            # Every earlier claim died mid-send (crashes); stop rather than loop forever.
            return self._result(job, Verdict.FAILED, f"gave up after {job.attempt - 1} attempts")
        try:
            # Decoded when consumed (usually still in `recent`); otherwise parse the stored,
            # already validated bytes with pydantic's own JSON parser.
            transition = self._recent.get(job.ref.transition_id) or Transition.model_validate_json(
                job.transition_payload
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(the record)"
            return self._result(
                job, Verdict.FAILED, f"permanent: stored transition: {where}: {first['msg']}"
            )
        channel = job.ref.channel
        if not consent_allows(transition.data.profile.traits, job.suppressed_channels, channel):
            return self._result(job, Verdict.SKIPPED, REASON_CONSENT)
        if channel not in self._channels:
            return self._result(job, Verdict.FAILED, f"permanent: no {channel!r} channel")
        return Delivery(
            transition=transition,
            action=PlannedAction(
                rule=job.ref.rule,
                action=job.ref.action,
                channel=channel,
                params=job.params,
                in_holdout=job.in_holdout,
            ),
            idempotency_key=job.idempotency_key,
            coupon=job.coupon,
        )

    def _sent(self, job: Job, transition: Transition, sent: ChannelResult) -> Result:
        wall_now = datetime.now(UTC)
        self._metrics.transition_to_send_seconds.labels(job.ref.channel).observe(
            max(0.0, (wall_now - transition.time).total_seconds())
        )
        return Result(
            job=job,
            verdict=Verdict.SENT,
            occurred_at=self._clock.now(),
            provider_message_id=sent.provider_message_id,
            coupon=sent.coupon,
        )

    def _retry_or_fail(self, job: Job, error: str, retry_after_s: float | None) -> Result:
        if job.attempt >= self._max_attempts:
            return self._result(
                job, Verdict.FAILED, f"gave up after {job.attempt} attempts: {error}"
            )
        delay_ms = self._backoff.delay_ms(
            job.attempt, self._rng, None if retry_after_s is None else retry_after_s * 1000
        )
        retry_at = datetime.now(UTC) + timedelta(milliseconds=delay_ms)
        return Result(
            job=job,
            verdict=Verdict.RETRY,
            occurred_at=self._clock.now(),
            reason=f"transient: {error}; attempt {job.attempt + 1} of {self._max_attempts} "
            f"after {delay_ms / 1000:.1f}s",
            retry_at=retry_at,
        )

    def _result(self, job: Job, verdict: Verdict, reason: str) -> Result:
        return Result(job=job, verdict=verdict, occurred_at=self._clock.now(), reason=reason)
