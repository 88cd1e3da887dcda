"""SMS, push, call and webhook channels against the dev HTTP sink: real HTTP over TCP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from notifier.channels.base import (
    Channel,
    Delivery,
    PermanentChannelError,
    TransientChannelError,
)
from notifier.channels.call import CallChannel
from notifier.channels.push import PushChannel
from notifier.channels.sms import SmsChannel
from notifier.channels.webhook import SIGNATURE_HEADER, WebhookChannel, verify_signature
from notifier.devsink import DevSink
from pydantic import SecretStr

from shared.clock import ManualClock
from tests.unit.notifier.factories import (
    CONTACT,
    T0,
    make_coupon,
    make_delivery,
    make_transition,
)

SECRET = SecretStr("whsec-test")


@pytest.fixture
async def sink() -> AsyncIterator[DevSink]:
    async with DevSink(seed=7, hang_ms=5_000) as server:
        yield server


def build(channel: str, url: str, timeout_s: float = 2.0) -> Channel:
    clock = ManualClock(T0)
    if channel == "sms":
        return SmsChannel(url=url, timeout_s=timeout_s)
    if channel == "push":
        return PushChannel(url=url, timeout_s=timeout_s)
    if channel == "call":
        return CallChannel(url=url, timeout_s=timeout_s, clock=clock)
    return WebhookChannel(url=url, secret=SECRET, timeout_s=timeout_s, clock=clock)


PARAMS = {
    "sms": {"template": "wakeup_push"},
    "push": {"template": "wakeup_push"},
    "call": {"template": "recall_call", "priority": "high", "attempt_window_hours": 48},
    "webhook": {"event": "lifecycle.silent"},
}
CHANNELS = sorted(PARAMS)


def delivery_for(channel: str, **overrides: object) -> Delivery:
    return make_delivery(channel, PARAMS[channel], coupon=make_coupon(), **overrides)  # type: ignore[arg-type]


async def send(channel: str, url: str, delivery: Delivery, timeout_s: float = 2.0) -> str | None:
    sender = build(channel, url, timeout_s)
    try:
        return (await sender.send(delivery)).provider_message_id
    finally:
        await sender.aclose()


@pytest.mark.parametrize("channel", CHANNELS)
async def test_each_request_carries_the_idempotency_key_and_the_trace_fields(
    sink: DevSink, channel: str
) -> None:
    delivery = delivery_for(channel)

    message_id = await send(channel, f"{sink.url}/{channel}", delivery)

    [record] = sink.requests
    assert record["path"] == f"/{channel}"
    assert record["headers"]["idempotency-key"] == delivery.idempotency_key
    assert record["headers"]["content-type"] == "application/json"
    assert record["json"]["transition_id"] == delivery.transition.id
    assert (record["json"]["rule"], record["json"]["action"]) == (
        "silent_wakeup",
        delivery.action.action,
    )
    assert record["delivered"]
    assert message_id == record["message_id"]


async def test_sms_goes_to_the_normalised_phone_with_the_rendered_text(sink: DevSink) -> None:
    await send("sms", f"{sink.url}/sms", delivery_for("sms"))
    body = sink.requests[0]["json"]
    assert body["to"] == "+8613800000000"
    assert body["text"] == "10 CNY off with code ABCD-EFGH-JKMNP, until 2026-01-19."


async def test_push_has_a_title_and_a_body(sink: DevSink) -> None:
    await send("push", f"{sink.url}/push", delivery_for("push"))
    body = sink.requests[0]["json"]
    assert body["title"] == "A gift is waiting for you"
    assert "ABCD-EFGH-JKMNP" in body["body"]
    assert body["data"] == {"coupon_code": "ABCD-EFGH-JKMNP"}


async def test_a_call_task_has_script_priority_and_attempt_window(sink: DevSink) -> None:
    await send("call", f"{sink.url}/call", delivery_for("call"))
    body = sink.requests[0]["json"]
    assert body["phone"] == "+8613800000000"
    assert body["priority"] == "high"
    assert datetime.fromisoformat(body["not_before"]) == T0
    assert datetime.fromisoformat(body["not_after"]) == T0 + timedelta(hours=48)
    assert body["timezone"] == "Asia/Shanghai"
    assert "Offer code ABCD-EFGH-JKMNP" in body["script"]
    assert body["coupon"]["code"] == "ABCD-EFGH-JKMNP"


async def test_a_webhook_is_signed_over_the_exact_body(sink: DevSink) -> None:
    await send("webhook", f"{sink.url}/hook", delivery_for("webhook"))
    record = sink.requests[0]
    header = record["headers"][SIGNATURE_HEADER.lower()]
    body = record["body"].encode()
    assert verify_signature(SECRET, header, body, now=T0)
    assert not verify_signature(SecretStr("other"), header, body, now=T0)
    assert not verify_signature(SECRET, header, body + b" ", now=T0)
    assert not verify_signature(SECRET, header, body, now=T0 + timedelta(hours=1))
    assert record["json"]["event"] == "lifecycle.silent"
    assert record["json"]["transition"]["data"]["to_stage"] == "silent"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_retry_with_the_same_key_is_not_delivered_twice(
    sink: DevSink, channel: str
) -> None:
    delivery = delivery_for(channel)
    first = await send(channel, sink.url, delivery)
    second = await send(channel, sink.url, delivery)
    assert first == second
    assert len(sink.requests) == 2
    assert len(sink.delivered()) == 1


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_503_is_transient_and_delivers_nothing(sink: DevSink, channel: str) -> None:
    sink.fail_share = 1.0
    with pytest.raises(TransientChannelError, match="503"):
        await send(channel, sink.url, delivery_for(channel))
    assert sink.delivered() == []


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_timeout_is_transient_and_the_retry_does_not_deliver_again(
    sink: DevSink, channel: str
) -> None:
    delivery = delivery_for(channel)
    sink.timeout_share = 1.0
    with pytest.raises(TransientChannelError, match="timed out"):
        await send(channel, sink.url, delivery, timeout_s=0.2)
    # The ambiguous case: the provider acted although the client saw a timeout.
    assert len(sink.delivered()) == 1

    sink.timeout_share = 0.0
    await send(channel, sink.url, delivery)
    assert [record["mode"] for record in sink.requests] == ["timeout", "ok"]
    assert len(sink.delivered()) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, PermanentChannelError),
        (401, PermanentChannelError),
        (404, PermanentChannelError),
        (422, PermanentChannelError),
        (408, TransientChannelError),
        (429, TransientChannelError),
        (500, TransientChannelError),
        (502, TransientChannelError),
    ],
)
async def test_statuses_are_classified(sink: DevSink, status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=str(status)):
        await send("sms", f"{sink.url}/sms/status/{status}", delivery_for("sms"))


async def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientChannelError, match="ConnectError"):
        await send("push", f"http://127.0.0.1:{port}/push", delivery_for("push"))


@pytest.mark.parametrize("channel", ["sms", "call"])
@pytest.mark.parametrize(
    ("traits", "reason"),
    [({"email": "a@b.co"}, "no phone trait"), ({**CONTACT, "phone": "call me"}, "not a phone")],
)
async def test_a_missing_or_bad_phone_is_permanent_and_sends_nothing(
    sink: DevSink, channel: str, traits: dict[str, str], reason: str
) -> None:
    delivery = delivery_for(channel, transition=make_transition(traits=traits))
    with pytest.raises(PermanentChannelError, match=reason):
        await send(channel, sink.url, delivery)
    assert sink.requests == []


async def test_a_template_that_cannot_render_is_permanent_and_sends_nothing(
    sink: DevSink,
) -> None:
    delivery = make_delivery("sms", {"template": "winback_coupon"}, coupon=None)
    with pytest.raises(PermanentChannelError, match="winback_coupon"):
        await send("sms", sink.url, delivery)
    assert sink.requests == []
