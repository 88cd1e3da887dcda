"""SMS through an HTTP provider: the action's template body to the user's `phone` trait."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from notifier.channels.base import ChannelResult, Delivery, PermanentChannelError
from notifier.channels.http_provider import (
    HttpProvider,
    PostClient,
    common_fields,
    render_for,
    trait,
)

_PHONE = re.compile(r"^\+?[0-9]{6,15}$")  # E.164 at most 15 digits; separators removed first


def phone_of(delivery: Delivery) -> str:
    """The user's phone number, normalised, or a permanent error (retrying will not add one)."""
    raw = trait(delivery, "phone")
    if raw is None:
        raise PermanentChannelError(f"user {delivery.transition.data.user_id!r} has no phone trait")
    phone = re.sub(r"[\s\-().]", "", raw)
    if not _PHONE.fullmatch(phone):
        raise PermanentChannelError(f"phone trait {raw!r} is not a phone number")
    return phone


class SmsChannel:
    name = "sms"

    def __init__(
        self,
        *,
        url: str,
        timeout_s: float,
        api_key: SecretStr | None = None,
        templates_dir: Path | None = None,
        client: PostClient | None = None,
    ) -> None:
        self._provider = HttpProvider(url=url, timeout_s=timeout_s, api_key=api_key, client=client)
        self._templates_dir = templates_dir

    async def send(self, delivery: Delivery) -> ChannelResult:
        phone = phone_of(delivery)
        message = render_for(delivery, self._templates_dir)
        payload = {"to": phone, "text": message.text, **common_fields(delivery)}
        message_id = await self._provider.post_json(
            payload, idempotency_key=delivery.idempotency_key
        )
        return ChannelResult(provider_message_id=message_id)

    async def aclose(self) -> None:
        await self._provider.aclose()
