"""Helpers for the notifier's integration tests: transitions, a running notifier, outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from notifier.playbook import Playbook, parse_playbook
from notifier.service import NotifierService
from notifier.settings import NotifierSettings
from notifier.store import tables as t
from notifier.store.migrate import migrate
from sqlalchemy import func, select

from shared.clock import Clock
from shared.codec import decode, encode
from shared.kafka.consumer import make_consumer
from shared.kafka.producer import make_producer
from shared.notifications import NotificationOutcome
from shared.topics import Topics
from shared.transitions import (
    Profile,
    PurchaseLevel,
    Stage,
    Transition,
    TransitionData,
    TransitionKind,
)

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")  # noon UTC: outside quiet hours
CONTACT = {"email": "ann@example.com", "phone": "+8613800000000", "first_name": "Ann"}


def transition(
    user_id: str,
    *,
    to_stage: Stage = Stage.SILENT,
    from_stage: Stage | None = Stage.ACTIVE,
    kind: TransitionKind = TransitionKind.STAGE_CHANGED,
    reason: str = "inactivity",
    at: datetime = T0,
    traits: dict[str, Any] | None = None,
    discriminator: str | None = None,
) -> Transition:
    profile = Profile(
        stage=to_stage,
        stage_since=at,
        first_seen_at=at - timedelta(days=40),
        last_active_at=at - timedelta(days=7),
        orders=2,
        revenue=80.0,
        average_order_value=40.0,
        purchase_level=PurchaseLevel.REPEAT,
        traits=CONTACT if traits is None else traits,
    )
    data = TransitionData(
        user_id=user_id,
        kind=kind,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        profile=profile,
    )
    return Transition.build(data, at, discriminator=discriminator or to_stage.value)


# One SMS for every user who turns silent: the rule most tests need.
SMS_ON_SILENT: list[dict[str, Any]] = [
    {
        "name": "nudge",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [{"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}}],
    }
]


def playbook(rules: list[dict[str, Any]], **top: Any) -> Playbook:
    """A playbook with no holdout and no quiet hours unless a test asks for them."""
    raw: dict[str, Any] = {"holdout_share": 0.0, "quiet_hours": {"channels": []}, "rules": rules}
    raw.update(top)
    return parse_playbook(raw)


def settings(
    topics: Topics,
    database_url: str,
    kafka: str,
    *,
    smtp_port: int = 1,
    sink_url: str = "http://127.0.0.1:1",
    **overrides: Any,
) -> NotifierSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka,
        "database_url": database_url,
        "topic_events": topics.events,
        "topic_transitions": topics.transitions,
        "topic_notifications": topics.notifications,
        "topic_partitions": 3,
        "notifier_group": f"{topics.transitions}.notifier",
        "notifier_smtp_host": "127.0.0.1",
        "notifier_smtp_port": smtp_port,
        "notifier_sms_url": f"{sink_url}/sms",
        "notifier_push_url": f"{sink_url}/push",
        "notifier_call_url": f"{sink_url}/call",
        "notifier_webhook_url": f"{sink_url}/webhook",
        "notifier_concurrency": 8,
        "notifier_provider_timeout_ms": 2000,
        "notifier_lease_ms": 5000,
        "notifier_poll_interval_ms": 50,
        "notifier_retry_base_ms": 50,
        "notifier_retry_max_ms": 500,
        "notifier_session_timeout_ms": 6000,
    }
    values.update(overrides)
    return NotifierSettings(**values)


@asynccontextmanager
async def running_notifier(
    config: NotifierSettings, rules: Playbook, *, clock: Clock | None = None
) -> AsyncIterator[NotifierService]:
    service = NotifierService(config, rules, clock=clock)
    await migrate(service.engine)
    await service.start()
    try:
        yield service
    finally:
        fatal = service.fatal
        await service.stop()
        assert fatal is None, f"a notifier loop died: {fatal!r}"


async def produce(kafka: str, topic: str, transitions: Sequence[Transition]) -> None:
    producer = make_producer(kafka, client_id="test-transitions")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, encode(tr), key=tr.data.user_id.encode())
            for tr in transitions
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def produce_raw(kafka: str, topic: str, value: bytes, key: bytes) -> None:
    producer = make_producer(kafka, client_id="test-raw")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning, accumulating records across calls."""

    def __init__(self, kafka: str, topic: str, partitions: int = 3) -> None:
        self._consumer = make_consumer(kafka, group_id=None, client_id="test-reader")
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.values: list[bytes] = []
        self.headers: list[dict[str, bytes]] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[bytes]:
        batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
        for records in batch.values():
            for record in records:
                self.values.append(record.value or b"")
                self.headers.append(dict(record.headers or ()))
        return self.values

    def outcomes(self) -> list[NotificationOutcome]:
        return [decode(NotificationOutcome, value) for value in self.values]


async def count_actions(service: NotifierService, **where: Any) -> int:
    query = select(func.count()).select_from(t.actions)
    for column, value in where.items():
        query = query.where(t.actions.c[column] == value)
    async with service.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def action_rows(service: NotifierService) -> list[dict[str, Any]]:
    async with service.engine.connect() as conn:
        result = await conn.execute(select(t.actions).order_by(t.actions.c.id))
        return [dict(row._mapping) for row in result]
