"""Recall tasks for a call centre or outbound dialer: who, the script, priority, when to try."""

from __future__ import annotations

from datetime import timedelta
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
from notifier.channels.params import CallParams
from notifier.channels.sms import phone_of
from shared.clock import Clock, SystemClock


class CallChannel:
    name = "call"

    def __init__(
        self,
        *,
        url: str,
        timeout_s: float,
        api_key: SecretStr | None = None,
        templates_dir: Path | None = None,
        client: PostClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._provider = HttpProvider(url=url, timeout_s=timeout_s, api_key=api_key, client=client)
        self._templates_dir = templates_dir
        self._clock = clock or SystemClock()

    async def send(self, delivery: Delivery) -> ChannelResult:
        try:
            spec = CallParams.model_validate(dict(delivery.action.params))
        except ValueError as exc:
            raise PermanentChannelError(f"call action has bad params: {exc}") from None
        phone = phone_of(delivery)
        script = render_for(delivery, self._templates_dir)
        profile = delivery.transition.data.profile
        not_before = self._clock.now()
        coupon = delivery.coupon
        payload = {
            "phone": phone,
            "name": trait(delivery, "name"),
            "timezone": trait(delivery, "timezone"),
            "subject": script.subject,
            "script": script.text,
            "priority": spec.priority,
            # The window for attempts: the centre dials within it, then gives up.
            "not_before": not_before.isoformat(),
            "not_after": (not_before + timedelta(hours=spec.attempt_window_hours)).isoformat(),
            "customer": {
                "stage": profile.stage.value,
                "orders": profile.orders,
                "revenue": profile.revenue,
                "rfm_segment": profile.rfm.segment if profile.rfm else None,
            },
            "coupon": coupon.model_dump(mode="json") if coupon else None,
            **common_fields(delivery),
        }
        task_id = await self._provider.post_json(payload, idempotency_key=delivery.idempotency_key)
        return ChannelResult(provider_message_id=task_id)

    async def aclose(self) -> None:
        await self._provider.aclose()
