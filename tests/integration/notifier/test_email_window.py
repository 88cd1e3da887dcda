"""SMTP cannot de-duplicate, so an email sender must not send again while its last accepted
mail is unrecorded: a kill -9 then re-sends at most one mail per sender."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from notifier.backoff import Backoff
from notifier.channels.base import ChannelResult, Delivery
from notifier.execute import Executor, ExecutorConfig
from notifier.ledger import Received, plan_batch
from notifier.metrics import NotifierMetrics
from notifier.send import Sender
from notifier.store import tables as t
from notifier.store.migrate import migrate
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.codec import encode
from shared.db import make_engine
from tests.integration.notifier.harness import T0, playbook, transition
from tests.waiting import eventually

MAILS = 60
SENDERS = 4


class CheckingEmail:
    """Accepts every mail; at each send, checks that this sender's last mail is recorded."""

    name = "email"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._last_by_sender: dict[asyncio.Task[object] | None, str] = {}
        self.sent = 0
        self.unrecorded_at_next_send: list[str] = []

    async def send(self, delivery: Delivery) -> ChannelResult:
        sender = asyncio.current_task()
        previous = self._last_by_sender.get(sender)
        if previous is not None:
            a = t.actions.c
            async with self._engine.connect() as conn:
                status = (
                    await conn.execute(select(a.status).where(a.idempotency_key == previous))
                ).scalar_one()
            if status != t.SENT:
                self.unrecorded_at_next_send.append(previous)
        self._last_by_sender[sender] = delivery.idempotency_key
        self.sent += 1
        return ChannelResult(provider_message_id=f"<{delivery.idempotency_key}@test>")

    async def aclose(self) -> None:
        return None


async def test_an_email_sender_sends_again_only_once_its_last_mail_is_recorded(
    fresh_database_url: str,
) -> None:
    engine = make_engine(fresh_database_url)
    try:
        await migrate(engine)
        rules = playbook(
            [
                {
                    "name": "thanks",
                    "match": {"to_stage": "silent"},
                    "actions": [
                        {"name": "email", "channel": "email", "params": {"template": "wakeup_push"}}
                    ],
                }
            ]
        )
        clock = SystemClock()
        received = [
            Received(tr, encode(tr))
            for tr in (transition(f"u-{n}", at=T0 + timedelta(seconds=n)) for n in range(MAILS))
        ]
        async with engine.begin() as conn:
            await plan_batch(conn, received, playbook=rules, clock=clock, wall_now=clock.now())
        channel = CheckingEmail(engine)
        metrics = NotifierMetrics.create()
        executor = Executor(
            engine=engine,
            sender=Sender(
                channels={"email": channel},
                clock=clock,
                backoff=Backoff(50, 500),
                max_attempts=3,
                metrics=metrics,
            ),
            clock=clock,
            config=ExecutorConfig(
                concurrency=SENDERS, lease=timedelta(seconds=10), poll_interval_s=0.05
            ),
            metrics=metrics,
            on_recorded=lambda: None,
        )
        running = asyncio.create_task(executor.run())

        async def sent() -> int:
            async with engine.connect() as conn:
                query = select(func.count()).where(t.actions.c.status == t.SENT)
                return int((await conn.execute(query)).scalar_one())

        try:
            await eventually(sent, until=lambda n: n == MAILS, timeout_s=30, what="all sent")
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        assert channel.sent == MAILS
        assert channel.unrecorded_at_next_send == []
    finally:
        await engine.dispose()
