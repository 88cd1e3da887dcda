"""A generic signed POST for any downstream system.

Signature (as Stripe does it): header `X-Lifecycle-Signature: t=<unix>,v1=<hex>`
where hex = HMAC-SHA256(secret, f"{t}.{raw body}"). The timestamp lets a
receiver refuse replays older than its tolerance (`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import orjson
from pydantic import SecretStr

from notifier.channels.base import ChannelResult, Delivery, PermanentChannelError
from notifier.channels.http_provider import HttpProvider, PostClient, common_fields
from notifier.channels.params import WebhookParams
from shared.clock import Clock, SystemClock

SIGNATURE_HEADER = "X-Lifecycle-Signature"


def sign(secret: SecretStr, timestamp_s: int, body: bytes) -> str:
    mac = hmac.new(secret.get_secret_value().encode(), digestmod=hashlib.sha256)
    mac.update(f"{timestamp_s}.".encode())
    mac.update(body)
    return f"t={timestamp_s},v1={mac.hexdigest()}"


def verify_signature(
    secret: SecretStr, header: str, body: bytes, now: datetime, tolerance_s: int = 300
) -> bool:
    """For receivers (and tests): the signature matches and is not older than the tolerance."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp_s = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp_s) > tolerance_s:
        return False
    expected = sign(secret, timestamp_s, body)
    return hmac.compare_digest(expected, f"t={timestamp_s},v1={fields.get('v1', '')}")


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: SecretStr,
        timeout_s: float,
        client: PostClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not secret.get_secret_value():
            raise ValueError("webhook secret must not be empty: receivers could not verify")
        self._provider = HttpProvider(url=url, timeout_s=timeout_s, client=client)
        self._secret = secret
        self._clock = clock or SystemClock()

    async def send(self, delivery: Delivery) -> ChannelResult:
        try:
            spec = WebhookParams.model_validate(dict(delivery.action.params))
        except ValueError as exc:
            raise PermanentChannelError(f"webhook action has bad params: {exc}") from None
        coupon = delivery.coupon
        body = orjson.dumps(
            {
                "event": spec.event,
                "transition": delivery.transition.model_dump(mode="json"),
                "coupon": coupon.model_dump(mode="json") if coupon else None,
                **common_fields(delivery),
            }
        )
        # Signed at each attempt: a retry carries a fresh timestamp, the same body and key.
        signature = sign(self._secret, int(self._clock.now().timestamp()), body)
        message_id = await self._provider.post_bytes(
            body,
            idempotency_key=delivery.idempotency_key,
            extra_headers={SIGNATURE_HEADER: signature},
        )
        return ChannelResult(provider_message_id=message_id)

    async def aclose(self) -> None:
        await self._provider.aclose()
