"""Push notifications via an HTTP provider, by user id (and a device token if known)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from notifier.channels.base import ChannelResult, Delivery
from notifier.channels.http_provider import (
    HttpProvider,
    PostClient,
    common_fields,
    render_for,
    trait,
)


class PushChannel:
    name = "push"

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
        message = render_for(delivery, self._templates_dir)
        # Push services (FCM topics, OneSignal external ids, …) can target the user id
        # alone; a device token, when the app reported one, is passed through.
        payload = {
            "device_token": trait(delivery, "push_token"),
            "title": message.subject,
            "body": message.text,
            "data": {"coupon_code": delivery.coupon.code if delivery.coupon else None},
            **common_fields(delivery),
        }
        message_id = await self._provider.post_json(
            payload, idempotency_key=delivery.idempotency_key
        )
        return ChannelResult(provider_message_id=message_id)

    async def aclose(self) -> None:
        await self._provider.aclose()
