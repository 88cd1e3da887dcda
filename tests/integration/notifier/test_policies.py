"""Consent, frequency caps, quiet hours (manual clock) and holdout, end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
from notifier.app import create_app
from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp
from notifier.playbook import in_holdout

from shared.clock import ManualClock
from shared.notifications import NotificationOutcome, OutcomeResult
from shared.topics import Topics
from shared.transitions import Stage
from tests.integration.notifier.harness import (
    CONTACT,
    T0,
    TopicReader,
    playbook,
    produce,
    running_notifier,
    settings,
    transition,
)
from tests.waiting import eventually

EMAIL_AND_SMS = [
    {
        "name": "care",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [
            {"name": "coupon", "channel": "coupon", "params": {"amount": 5}},
            {"name": "email", "channel": "email", "params": {"template": "care_checkin"}},
            {"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}},
        ],
    }
]
EMAIL_ON_EVERY_STAGE = [
    {
        "name": f"on_{stage}",
        "match": {"kind": "stage_changed", "to_stage": stage},
        "actions": [{"name": "email", "channel": "email", "params": {"template": "care_checkin"}}],
    }
    for stage in ("silent", "churned", "active")
]


def _count(wanted: int) -> Callable[[list[str]], bool]:
    return lambda got: len(got) == wanted


def _by_user(outcomes: list[NotificationOutcome]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for o in outcomes:
        label = o.result.value + (f":{o.reason}" if o.result == OutcomeResult.SKIPPED else "")
        found.setdefault((o.user_id, o.action), []).append(label)
    return found


async def test_opt_outs_by_trait_and_by_api_skip_that_channel_only(
    live_kafka: str,
    topics: Topics,
    fresh_database_url: str,
    smtp_sink: DevSmtp,
    http_sink: DevSink,
) -> None:
    config = settings(
        topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port, sink_url=http_sink.url
    )
    async with (
        running_notifier(config, playbook(EMAIL_AND_SMS)) as service,
        TopicReader(live_kafka, topics.notifications) as reader,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(service, manage_service=False)),
            base_url="http://notifier",
        ) as api,
    ):
        answer = await api.post("/v1/users/u-api/suppress", json={"reason": "asked by phone"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["channels"] == ["*"]
        answer = await api.post(
            "/v1/users/u-api-sms/suppress", json={"channels": ["sms"], "reason": "STOP"}
        )
        assert answer.status_code == 200, answer.text
        refused = await api.post("/v1/users/u-x/suppress", json={"channels": ["fax"]})
        assert refused.status_code == 422
        assert "fax" in refused.text
        assert "reason" in refused.text

        await produce(
            live_kafka,
            topics.transitions,
            [
                transition("u-unsub", traits={**CONTACT, "unsubscribed": True}),
                transition("u-no-email", traits={**CONTACT, "email_opt_out": "true"}),
                transition("u-api"),
                transition("u-api-sms"),
                transition("u-ok"),
            ],
        )

        async def outcomes() -> dict[tuple[str, str], list[str]]:
            await reader.poll()
            return _by_user(reader.outcomes())

        got = await eventually(
            outcomes, until=lambda found: len(found) == 15, timeout_s=30, what="15 outcomes"
        )
        skipped_email = service.metrics.actions.labels("email", "skipped:consent")
        assert skipped_email._value.get() == 3  # u-unsub, u-no-email, u-api

    assert got[("u-unsub", "email")] == ["skipped:consent"]
    assert got[("u-unsub", "sms")] == ["skipped:consent"]
    assert got[("u-unsub", "coupon")] == ["sent"]  # a coupon is not a message
    assert got[("u-no-email", "email")] == ["skipped:consent"]
    assert got[("u-no-email", "sms")] == ["sent"]
    assert got[("u-api", "email")] == ["skipped:consent"]
    assert got[("u-api", "sms")] == ["skipped:consent"]
    assert got[("u-api-sms", "email")] == ["sent"]
    assert got[("u-api-sms", "sms")] == ["skipped:consent"]
    assert got[("u-ok", "email")] == ["sent"]
    assert got[("u-ok", "sms")] == ["sent"]
    recipients = sorted(str(m["To"]) for m in smtp_sink.messages())
    assert recipients == ["ann@example.com", "ann@example.com"]  # u-api-sms and u-ok
    sms_users = sorted(r["json"]["user_id"] for r in http_sink.delivered())
    assert sms_users == ["u-no-email", "u-ok"]


async def test_caps_allow_one_email_a_day_and_three_a_week(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    clock = ManualClock(T0)
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    stages = [Stage.SILENT, Stage.CHURNED, Stage.ACTIVE]
    async with (
        running_notifier(config, playbook(EMAIL_ON_EVERY_STAGE), clock=clock),
        TopicReader(live_kafka, topics.notifications) as reader,
    ):

        async def results() -> list[str]:
            await reader.poll()
            return [
                o.result.value + (f":{o.reason}" if o.reason else "") for o in reader.outcomes()
            ]

        # Day 0: two transitions an hour apart -> the second is over the daily cap.
        for hour, stage in enumerate(stages[:2]):
            clock.set(T0 + timedelta(hours=hour))
            await produce(
                live_kafka, topics.transitions, [transition("u-1", to_stage=stage, at=clock.now())]
            )
            await eventually(results, until=_count(hour + 1), what="outcome")
        assert await results() == ["sent", "skipped:cap"]

        # Days 1..3: one a day. The week's third goes out; the fourth is over the weekly cap.
        for day in (1, 2, 3):
            clock.set(T0 + timedelta(days=day))
            stage = stages[day % 3]
            await produce(
                live_kafka,
                topics.transitions,
                [transition("u-1", to_stage=stage, at=clock.now(), discriminator=f"d{day}")],
            )
            final = await eventually(results, until=_count(day + 2), what="outcome")
    assert final == ["sent", "skipped:cap", "sent", "sent", "skipped:cap"]
    assert len(smtp_sink.messages()) == 3


async def test_quiet_hours_defer_to_the_window_end_in_the_users_time_zone(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    # 14:00 UTC is 22:00 in Shanghai: inside the default 21:00-08:00 quiet window.
    clock = ManualClock(T0.replace(hour=14))
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    quiet = {"channels": ["email"]}
    shanghai = {**CONTACT, "timezone": "Asia/Shanghai"}
    async with (
        running_notifier(config, playbook(EMAIL_ON_EVERY_STAGE, quiet_hours=quiet), clock=clock),
        TopicReader(live_kafka, topics.notifications) as reader,
    ):
        await produce(
            live_kafka,
            topics.transitions,
            [
                transition("u-shanghai", at=clock.now(), traits=shanghai),
                transition(
                    "u-london", at=clock.now(), traits={**CONTACT, "timezone": "Europe/London"}
                ),
            ],
        )

        async def outcomes() -> list[NotificationOutcome]:
            await reader.poll()
            return reader.outcomes()

        got = await eventually(outcomes, until=lambda o: len(o) == 2, what="2 outcomes")
        results = {o.user_id: o for o in got}
        assert results["u-london"].result == OutcomeResult.SENT
        assert results["u-shanghai"].result == OutcomeResult.DEFERRED
        # 08:00 in Shanghai is 00:00 UTC the next day.
        assert results["u-shanghai"].reason == "quiet_hours until 2026-01-06T00:00:00+00:00"
        assert len(smtp_sink.messages()) == 1

        # 07:59 in Shanghai: still quiet. A probe in New York (18:59 there) goes out,
        # which shows the senders looked at the due work at this time and left it.
        clock.set(T0.replace(hour=23, minute=59))
        new_york = {**CONTACT, "timezone": "America/New_York"}
        await produce(
            live_kafka,
            topics.transitions,
            [transition("u-new-york", at=clock.now(), traits=new_york, to_stage=Stage.CHURNED)],
        )
        got = await eventually(outcomes, until=lambda o: len(o) == 3, what="the probe's outcome")
        assert (got[-1].user_id, got[-1].result) == ("u-new-york", OutcomeResult.SENT)
        assert len(smtp_sink.messages()) == 2

        clock.set(T0 + timedelta(hours=12))  # 00:00 UTC = 08:00 Shanghai: released
        got = await eventually(outcomes, until=lambda o: len(o) == 4, what="the release")
    assert got[-1].user_id == "u-shanghai"
    assert got[-1].result == OutcomeResult.SENT
    assert got[-1].occurred_at == T0 + timedelta(hours=12)


async def test_holdout_users_get_nothing_and_are_reported_apart(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    users = [f"u-{n}" for n in range(40)]
    held_out = {u for u in users if in_holdout(u, "on_silent", 0.5)}
    assert 8 < len(held_out) < 32  # the hash splits them, whatever the exact share
    async with (
        running_notifier(config, playbook(EMAIL_ON_EVERY_STAGE, holdout_share=0.5)),
        TopicReader(live_kafka, topics.notifications) as reader,
    ):
        await produce(live_kafka, topics.transitions, [transition(u) for u in users])

        async def outcomes() -> list[NotificationOutcome]:
            await reader.poll()
            return reader.outcomes()

        got = await eventually(outcomes, until=lambda o: len(o) == 40, what="40 outcomes")
    skipped = {o.user_id for o in got if o.result == OutcomeResult.SKIPPED}
    assert skipped == held_out
    assert {o.reason for o in got if o.user_id in held_out} == {"holdout"}
    assert len(smtp_sink.messages()) == 40 - len(held_out)
