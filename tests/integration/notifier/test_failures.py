"""Provider failures: permanent (not retried), transient (retried with the same key, backoff),
exhausted (failed + dead letter), timeouts (ambiguous; the provider de-duplicates), poison."""

from __future__ import annotations

import orjson
from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp

from shared.kafka.dead_letter import HEADER_ERROR
from shared.notifications import NotificationOutcome, OutcomeResult
from shared.topics import Topics, dead_letter_topic
from tests.integration.notifier.harness import (
    CONTACT,
    SMS_ON_SILENT,
    TopicReader,
    playbook,
    produce,
    produce_raw,
    running_notifier,
    settings,
    transition,
)
from tests.waiting import eventually

SMS = SMS_ON_SILENT
EMAIL = [
    {
        "name": "care",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [{"name": "email", "channel": "email", "params": {"template": "care_checkin"}}],
    }
]


async def test_a_4xx_is_not_retried_and_goes_to_the_dead_letter_topic(
    live_kafka: str, topics: Topics, fresh_database_url: str, http_sink: DevSink
) -> None:
    config = settings(
        topics,
        fresh_database_url,
        live_kafka,
        sink_url=http_sink.url,
        notifier_sms_url=f"{http_sink.url}/sms/status/422",
    )
    async with (
        running_notifier(config, playbook(SMS)),
        TopicReader(live_kafka, topics.notifications) as outcomes,
        TopicReader(live_kafka, dead_letter_topic(topics.notifications)) as letters,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-1")])
        await eventually(letters.poll, what="a dead letter")
        got = await eventually(outcomes.poll, what="an outcome")
    [outcome] = [NotificationOutcome.model_validate_json(v) for v in got]
    assert outcome.result == OutcomeResult.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("permanent: POST")
    assert "422" in outcome.reason
    assert len(http_sink.requests) == 1
    [letter] = [orjson.loads(v) for v in letters.values]
    assert letter["ledger_key"] == "nudge/sms"
    assert letter["attempts"] == 1
    assert letter["transition"]["subject"] == "u-1"
    assert b"422" in letters.headers[0][HEADER_ERROR]


async def test_a_refused_recipient_fails_permanently(
    live_kafka: str, topics: Topics, fresh_database_url: str, smtp_sink: DevSmtp
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, smtp_port=smtp_sink.port)
    bounced = {**CONTACT, "email": "nobody@reject.invalid"}
    async with (
        running_notifier(config, playbook(EMAIL)),
        TopicReader(live_kafka, topics.notifications) as outcomes,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-1", traits=bounced)])
        got = await eventually(outcomes.poll, what="an outcome")
    [outcome] = [NotificationOutcome.model_validate_json(v) for v in got]
    assert (outcome.result, outcome.attempt) == (OutcomeResult.FAILED, 1)
    assert "550" in (outcome.reason or "")
    assert smtp_sink.messages() == []


async def test_transient_failures_are_retried_then_given_up_and_dead_lettered(
    live_kafka: str, topics: Topics, fresh_database_url: str, http_sink: DevSink
) -> None:
    http_sink.fail_share = 1.0
    config = settings(
        topics, fresh_database_url, live_kafka, sink_url=http_sink.url, notifier_max_attempts=3
    )
    async with (
        running_notifier(config, playbook(SMS)) as service,
        TopicReader(live_kafka, topics.notifications) as outcomes,
        TopicReader(live_kafka, dead_letter_topic(topics.notifications)) as letters,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-1")])
        await eventually(letters.poll, what="a dead letter")
        got = await eventually(outcomes.poll, until=lambda v: len(v) == 3, what="3 outcomes")
        assert service.metrics.actions_dead_lettered.labels("sms")._value.get() == 1
    attempts = [NotificationOutcome.model_validate_json(v) for v in got]
    assert [(o.attempt, o.result) for o in attempts] == [
        (1, OutcomeResult.FAILED),
        (2, OutcomeResult.FAILED),
        (3, OutcomeResult.FAILED),
    ]
    assert attempts[0].reason is not None
    assert attempts[0].reason.startswith("transient: POST")
    assert "attempt 2 of 3" in attempts[0].reason
    assert attempts[2].reason is not None
    assert attempts[2].reason.startswith("gave up after 3 attempts")
    assert len({o.id for o in attempts}) == 3
    keys = {r["idempotency_key"] for r in http_sink.requests}
    assert len(http_sink.requests) == 3
    assert len(keys) == 1  # every retry carried the same idempotency key


async def test_a_timed_out_send_is_retried_with_the_same_key_and_delivered_once(
    live_kafka: str, topics: Topics, fresh_database_url: str, http_sink: DevSink
) -> None:
    http_sink.timeout_share = 1.0
    http_sink.hang_ms = 3000
    config = settings(
        topics,
        fresh_database_url,
        live_kafka,
        sink_url=http_sink.url,
        notifier_provider_timeout_ms=1000,
        notifier_lease_ms=3000,
    )
    async with (
        running_notifier(config, playbook(SMS)),
        TopicReader(live_kafka, topics.notifications) as outcomes,
    ):
        await produce(live_kafka, topics.transitions, [transition("u-1")])

        async def requests() -> int:
            return len(http_sink.requests)

        # The first request is in (and will time out, a second from now): answer the next.
        await eventually(requests, what="the first request at the sink")
        http_sink.timeout_share = 0.0
        got = await eventually(outcomes.poll, until=lambda v: len(v) == 2, what="the retry")
    first, second = [NotificationOutcome.model_validate_json(v) for v in got]
    assert first.result == OutcomeResult.FAILED
    assert "timed out" in (first.reason or "")
    assert (second.result, second.attempt) == (OutcomeResult.SENT, 2)
    assert len(http_sink.requests) == 2
    assert len({r["idempotency_key"] for r in http_sink.requests}) == 1
    assert len(http_sink.delivered()) == 1  # the provider acted once: the retry was a replay


async def test_a_poison_transition_is_dead_lettered_and_the_next_one_still_planned(
    live_kafka: str, topics: Topics, fresh_database_url: str, http_sink: DevSink
) -> None:
    config = settings(topics, fresh_database_url, live_kafka, sink_url=http_sink.url)
    async with (
        running_notifier(config, playbook(SMS)) as service,
        TopicReader(live_kafka, topics.notifications) as outcomes,
        TopicReader(live_kafka, dead_letter_topic(topics.transitions)) as letters,
    ):
        await produce_raw(live_kafka, topics.transitions, b'{"id": "x"}', key=b"u-1")
        await produce(live_kafka, topics.transitions, [transition("u-1")])
        await eventually(outcomes.poll, what="the valid transition's outcome")
        await eventually(letters.poll, what="the dead letter")
        assert service.metrics.transitions_dead_lettered._value.get() == 1
    assert letters.values == [b'{"id": "x"}']
    error = letters.headers[0][HEADER_ERROR].decode()
    assert error.startswith("invalid Transition: field 'type'")
