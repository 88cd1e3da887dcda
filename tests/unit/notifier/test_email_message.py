"""The MIME message as a receiver parses it: non-ASCII text survives the compat32 build."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message
from notifier.channels.email import build_message
from notifier.templates import RenderedMessage

from tests.unit.notifier.factories import make_delivery

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "subject",
    [
        "We miss you: 10 CNY off",
        "我们想念你 – 这是给你的 10 元优惠券，14 天内有效，请尽快使用。" * 2,
        "Grüße aus Berlin, ein Gutschein über 10 € für Sie, gültig 14 Tage lang ab heute",
    ],
)
def test_subject_sender_and_both_bodies_read_back_as_written(subject: str) -> None:
    rendered = RenderedMessage(
        subject=subject, text="Hallo Zoë,\n10 € für dich.", html="<p>Zoë</p>"
    )
    sender = "Lifecycle Tëam <hello@shop.example>"
    built = build_message(
        make_delivery("email", {"template": "winback_coupon"}),
        rendered,
        sender=sender,
        recipient="zoe@example.com",
        now=NOW,
    )
    # What aiosmtplib puts on the wire, parsed as a modern mail client would.
    received = message_from_bytes(flatten_message(built), policy=policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == subject
    assert received["From"] == sender
    assert received["To"] == "zoe@example.com"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == "Hallo Zoë,\n10 € für dich."
    assert html.get_content() == "<p>Zoë</p>"
    assert flatten_message(built).isascii()  # 7-bit clean: any SMTP server takes it
