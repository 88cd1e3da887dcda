"""Replaying the transitions topic sends nothing new; the recall report; event time; ops."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from aiokafka import TopicPartition
from notifier.app import create_app
from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp
from notifier.playbook import in_holdout
from notifier.service import NotifierService
from notifier.store import tables as t
from sqlalchemy import Table, func, select

from shared.kafka.consumer import make_consumer
from shared.notifications import OutcomeResult
from shared.topics import Topics
from shared.transitions import Stage
from tests.integration.notifier.harness import (
    T0,
    TopicReader,
    count_actions,
    playbook,
    produce,
    running_notifier,
    settings,
    transition,
)
from tests.waiting import eventually

WAKEUP = [
    {
        "name": "wakeup",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [
            {"name": "coupon", "channel": "coupon", "params": {"amount": 10}},
            {"name": "email", "channel": "email", "params": {"template": "winback_coupon"}},
            {"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}},
        ],
    }
]


async def _committed_total(kafka: str, group: str, topic: str) -> int:
    consumer = make_consumer(kafka, group_id=group, client_id="test-offsets")
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(3)]
    finally:
        await consumer.stop()
    return sum(offset or 0 for offset in offsets)


async def _table_count(service: NotifierService, table: Table) -> int:
    async with service.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_replaying_the_topic_from_the_start_sends_nothing_new(
    live_kafka: str,
    topics: Topics,
    fresh_database_url: str,
    smtp_sink: DevSmtp,
    http_sink: DevSink,
) -> None:
    config = settings(
        topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port, sink_url=http_sink.url
    )
    transitions = [transition(f"u-{n}") for n in range(30)]
    async with TopicReader(live_kafka, topics.notifications) as outcomes:
        async with running_notifier(config, playbook(WAKEUP)):
            await produce(live_kafka, topics.transitions, transitions)
            await eventually(outcomes.poll, until=lambda v: len(v) == 90, what="90 outcomes")
        sent_before = (len(smtp_sink.messages()), len(http_sink.requests))
        assert sent_before == (30, 30)

        replay = config.model_copy(update={"notifier_group": config.notifier_group + ".replay"})
        async with running_notifier(replay, playbook(WAKEUP)) as service:
            await eventually(
                lambda: _committed_total(live_kafka, replay.notifier_group, topics.transitions),
                until=lambda total: total == 30,
                what="the replay group to consume the whole topic",
            )
            assert await count_actions(service) == 90
            assert await _table_count(service, t.coupons) == 30
            assert await _table_count(service, t.outbox) == 0
            assert service.metrics.transitions_consumed._value.get() == 30
        await outcomes.poll()
    assert len(outcomes.values) == 90
    assert (len(smtp_sink.messages()), len(http_sink.requests)) == sent_before


async def test_recall_report_compares_treated_and_held_out_reactivation(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    rules = [
        {
            "name": "wakeup",
            "match": {"kind": "stage_changed", "to_stage": "silent"},
            "actions": [
                {"name": "email", "channel": "email", "params": {"template": "care_checkin"}}
            ],
        }
    ]
    users = [f"u-{n}" for n in range(60)]
    held = {u for u in users if in_holdout(u, "wakeup", 0.3)}
    # Every third user comes back within 10 days, every fifth after 20 (outside the window).
    soon = {u for n, u in enumerate(users) if n % 3 == 0}
    late = {u for n, u in enumerate(users) if n % 5 == 0} - soon
    comebacks = [
        transition(
            u,
            to_stage=Stage.ACTIVE,
            from_stage=Stage.SILENT,
            reason="reactivated",
            at=T0 + timedelta(days=10 if u in soon else 20),
        )
        for u in sorted(soon | late)
    ]
    async with (
        running_notifier(config, playbook(rules, holdout_share=0.3)) as service,
        TopicReader(live_kafka, topics.notifications) as outcomes,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(service, manage_service=False)),
            base_url="http://notifier",
        ) as api,
    ):
        await produce(live_kafka, topics.transitions, [transition(u) for u in users])
        await eventually(outcomes.poll, until=lambda v: len(v) == 60, what="60 outcomes")
        await produce(live_kafka, topics.transitions, comebacks)

        async def report() -> dict[str, Any]:
            answer = await api.get("/v1/reports/recall")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        def counted_all(body: dict[str, Any]) -> bool:
            rows = body["rows"]
            return bool(rows) and rows[0]["treated_reactivated"] + rows[0][
                "held_out_reactivated"
            ] == len(soon)

        body = await eventually(report, until=counted_all, what="reactivations in the report")
        wide = (await api.get("/v1/reports/recall", params={"window_days": 30})).json()
        bad = await api.get("/v1/reports/recall", params={"window_days": 0})

    treated = set(users) - held
    [row] = body["rows"]
    assert body["window_days"] == 14
    assert (row["rule"], row["channel"]) == ("wakeup", "email")
    assert (row["treated"], row["held_out"]) == (len(treated), len(held))
    assert row["treated_reactivated"] == len(treated & soon)
    assert row["held_out_reactivated"] == len(held & soon)
    assert row["treated_rate"] == len(treated & soon) / len(treated)
    assert row["held_out_rate"] == len(held & soon) / len(held)
    assert abs(row["lift"] - (row["treated_rate"] / row["held_out_rate"] - 1)) < 1e-9
    [wide_row] = wide["rows"]
    assert wide_row["treated_reactivated"] + wide_row["held_out_reactivated"] == len(soon | late)
    assert bad.status_code == 422


async def test_event_clock_releases_quiet_hours_when_newer_transitions_arrive(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    config = settings(
        topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port, notifier_clock="event"
    )
    rules = [
        {
            "name": f"on_{stage}",
            "match": {"kind": "stage_changed", "to_stage": stage},
            "actions": [
                {"name": "email", "channel": "email", "params": {"template": "care_checkin"}}
            ],
        }
        for stage in ("silent", "churned")
    ]
    night = T0.replace(hour=23)  # UTC quiet hours (default zone) until 08:00
    async with (
        running_notifier(config, playbook(rules, quiet_hours={"channels": ["email"]})),
        TopicReader(live_kafka, topics.notifications) as outcomes,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-night", at=night)])
        await eventually(outcomes.poll, what="the deferral")
        # Event time moves only with transitions: one at 09:00 the next day releases it.
        morning = night + timedelta(hours=10)
        await produce(
            live_kafka,
            topics.transitions,
            [transition("u-morning", at=morning, to_stage=Stage.CHURNED)],
        )
        await eventually(outcomes.poll, until=lambda v: len(v) == 3, what="both sent")
    got = [(o.user_id, o.result) for o in outcomes.outcomes()]
    assert got[0] == ("u-night", OutcomeResult.DEFERRED)
    assert sorted(got[1:]) == [("u-morning", OutcomeResult.SENT), ("u-night", OutcomeResult.SENT)]
    assert all(o.occurred_at.year == 2026 for o in outcomes.outcomes())  # event, not wall, time


async def test_metrics_health_and_readiness(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    async with (
        running_notifier(config, playbook(WAKEUP[:1])) as service,
        TopicReader(live_kafka, topics.notifications) as outcomes,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(service, manage_service=False)),
            base_url="http://notifier",
        ) as api,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-1", traits={})])
        await eventually(outcomes.poll, until=lambda v: len(v) == 3, what="3 outcomes")
        metrics = (await api.get("/metrics")).text
        health = await api.get("/healthz")
        ready = await api.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "kafka": True, "loops": True}
    assert 'notifier_actions_total{channel="coupon",result="sent"} 1.0' in metrics
    # No email trait and no phone: both fail permanently, by channel.
    assert 'notifier_actions_total{channel="email",result="failed"} 1.0' in metrics
    assert 'notifier_actions_total{channel="sms",result="failed"} 1.0' in metrics
    assert "notifier_coupons_issued_total 1.0" in metrics
    assert 'notifier_send_seconds_count{channel="coupon"} 1.0' in metrics
    assert "notifier_pending_retries" in metrics
