"""Each channel end to end: a Transition produced to the topic -> the real SMTP / HTTP sink,
the coupon in the ledger and in the message, and every outcome on the notifications topic."""

from __future__ import annotations

from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp
from notifier.ledger import idempotency_key
from notifier.store import tables as t
from sqlalchemy import select

from shared.notifications import OutcomeResult
from shared.topics import Topics
from tests.integration.notifier.harness import (
    TopicReader,
    playbook,
    produce,
    running_notifier,
    settings,
    transition,
)
from tests.waiting import eventually

EVERY_CHANNEL = [
    {
        "name": "wakeup",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [
            {"name": "coupon", "channel": "coupon", "params": {"amount": 10, "valid_days": 14}},
            {"name": "email", "channel": "email", "params": {"template": "winback_coupon"}},
            {"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}},
            {"name": "push", "channel": "push", "params": {"template": "wakeup_push"}},
            {"name": "call", "channel": "call", "params": {"template": "recall_call"}},
            {"name": "hook", "channel": "webhook", "params": {"event": "user.silent"}},
        ],
    }
]


async def test_every_channel_delivers_once_with_the_coupon_and_reports_each_outcome(
    live_kafka: str,
    topics: Topics,
    fresh_database_url: str,
    smtp_sink: DevSmtp,
    http_sink: DevSink,
) -> None:
    config = settings(
        topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port, sink_url=http_sink.url
    )
    silent = transition("u-1")
    async with (
        running_notifier(config, playbook(EVERY_CHANNEL)) as service,
        TopicReader(live_kafka, topics.notifications) as outcomes,
    ):
        await produce(live_kafka, topics.transitions, [silent])

        async def sent() -> list[str]:
            await outcomes.poll()
            return [o.action for o in outcomes.outcomes() if o.result == OutcomeResult.SENT]

        done = await eventually(sent, until=lambda got: len(got) == 6, timeout_s=30, what="6 sent")
        async with service.engine.connect() as conn:
            coupons = (await conn.execute(select(t.coupons))).all()

    assert sorted(done) == ["call", "coupon", "email", "hook", "push", "sms"]
    [coupon] = coupons
    assert coupon.user_id == "u-1"
    assert coupon.transition_id == silent.id
    assert float(coupon.amount) == 10
    assert coupon.currency == "CNY"
    by_action = {o.action: o for o in outcomes.outcomes()}
    assert by_action["coupon"].coupon is not None
    assert by_action["coupon"].coupon.code == coupon.code

    [mail] = smtp_sink.messages()
    assert mail["To"] == "ann@example.com"
    assert coupon.code in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail["X-Lifecycle-Idempotency-Key"] == idempotency_key(silent.id, "wakeup/email")

    paths = sorted(record["path"] for record in http_sink.delivered())
    assert paths == ["/call", "/push", "/sms", "/webhook"]
    for record in http_sink.delivered():
        action = record["path"].strip("/").replace("webhook", "hook")
        assert record["idempotency_key"] == idempotency_key(silent.id, f"wakeup/{action}")
    call = next(r for r in http_sink.delivered() if r["path"] == "/call")
    assert coupon.code in call["body"]
