"""EmailChannel against the dev SMTP sink: a real SMTP conversation over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from notifier.channels.base import PermanentChannelError, TransientChannelError
from notifier.channels.email import IDEMPOTENCY_HEADER, EmailChannel, message_id_for
from notifier.devsmtp import REJECT_DOMAIN, TEMPFAIL_DOMAIN, DevSmtp

from tests.ports import free_port
from tests.unit.notifier.factories import CONTACT, make_coupon, make_delivery, make_transition

SENDER = "Lifecycle <hello@shop.example>"


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[DevSmtp]:
    async with DevSmtp(tmp_path / "mail") as server:
        yield server


def channel_for(port: int, timeout_s: float = 5.0) -> EmailChannel:
    return EmailChannel(host="127.0.0.1", port=port, sender=SENDER, timeout_s=timeout_s)


def to(address: str) -> dict[str, str]:
    return {**CONTACT, "email": address}


async def test_a_message_arrives_with_its_rendered_content_and_stable_message_id(
    smtp: DevSmtp,
) -> None:
    delivery = make_delivery("email", {"template": "winback_coupon"}, coupon=make_coupon())

    result = await channel_for(smtp.port).send(delivery)

    [message] = smtp.messages()
    assert message["To"] == "ada@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "We miss you: 10 CNY off your next order"
    assert message["Message-ID"] == message_id_for(delivery.idempotency_key, SENDER)
    assert result.provider_message_id == message["Message-ID"]
    assert str(message[IDEMPOTENCY_HEADER]).strip() == delivery.idempotency_key  # may be folded
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert "ABCD-EFGH-JKMNP" in text.get_content()
    assert "Hi Ada," in text.get_content()
    assert html is not None
    assert "<code>ABCD-EFGH-JKMNP</code>" in html.get_content()


async def test_a_retry_carries_the_same_message_id_so_the_receiver_can_drop_it(
    smtp: DevSmtp,
) -> None:
    delivery = make_delivery("email", {"template": "welcome"})
    channel = channel_for(smtp.port)

    await channel.send(delivery)
    await channel.send(delivery)

    assert smtp.message_ids() == [message_id_for(delivery.idempotency_key, SENDER)] * 2


async def test_a_refused_recipient_is_permanent(smtp: DevSmtp) -> None:
    transition = make_transition(traits=to(f"nobody@{REJECT_DOMAIN}"))
    delivery = make_delivery("email", {"template": "welcome"}, transition=transition)

    with pytest.raises(PermanentChannelError, match="550"):
        await channel_for(smtp.port).send(delivery)
    assert smtp.messages() == []


async def test_a_deferred_recipient_is_transient(smtp: DevSmtp) -> None:
    transition = make_transition(traits=to(f"later@{TEMPFAIL_DOMAIN}"))
    delivery = make_delivery("email", {"template": "welcome"}, transition=transition)

    with pytest.raises(TransientChannelError, match="451"):
        await channel_for(smtp.port).send(delivery)


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({"phone": "+8613800000000"}, "no email trait"),
        (to("not-an-address"), "not an email address"),
        (to("two@x.com, three@y.com"), "not an email address"),
    ],
)
async def test_a_missing_or_bad_address_is_permanent(
    smtp: DevSmtp, traits: dict[str, str], reason: str
) -> None:
    delivery = make_delivery(
        "email", {"template": "welcome"}, transition=make_transition(traits=traits)
    )
    with pytest.raises(PermanentChannelError, match=reason):
        await channel_for(smtp.port).send(delivery)
    assert smtp.messages() == []


async def test_a_template_that_cannot_render_is_permanent(smtp: DevSmtp) -> None:
    # winback_coupon needs a coupon; none was issued for this delivery.
    delivery = make_delivery("email", {"template": "winback_coupon"}, coupon=None)
    with pytest.raises(PermanentChannelError, match="winback_coupon"):
        await channel_for(smtp.port).send(delivery)
    assert smtp.messages() == []


async def test_a_refused_connection_is_transient() -> None:
    delivery = make_delivery("email", {"template": "welcome"})
    with pytest.raises(TransientChannelError, match="SMTP"):
        await channel_for(free_port()).send(delivery)


async def test_a_server_that_never_greets_is_a_transient_timeout() -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # says nothing until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        delivery = make_delivery("email", {"template": "welcome"})
        with pytest.raises(TransientChannelError, match="Timeout"):
            await channel_for(port, timeout_s=0.3).send(delivery)
        assert accepted.is_set()
    finally:
        server.close()
        await server.wait_closed()
