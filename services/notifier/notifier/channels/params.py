"""What each channel accepts as action parameters, validated when the playbook loads.

Pure pydantic models (the pure playbook imports them): a typo in a playbook's
action params is refused at start-up naming the key, never at the first send.
Channels re-validate the same dict with the same model when they send.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChannelName = Literal["coupon", "email", "sms", "push", "call", "webhook"]
CHANNEL_NAMES: tuple[ChannelName, ...] = ("coupon", "email", "sms", "push", "call", "webhook")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CouponParams(_Params):
    amount: float = Field(gt=0, le=1_000_000, description="face value, in `currency`")
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    valid_days: int = Field(default=14, ge=1, le=3660, description="expiry = issue time + this")


class MessageParams(_Params):
    """email, sms, push: one named template (see notifier/templates/)."""

    template: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")


class CallParams(_Params):
    """A recall task for a call centre or outbound dialer."""

    template: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$", description="the call script")
    priority: Literal["low", "normal", "high"] = "normal"
    attempt_window_hours: int = Field(
        default=72, ge=1, le=720, description="the centre may call from send time until +this"
    )


class WebhookParams(_Params):
    event: str = Field(default="lifecycle.action", min_length=1, max_length=200)


PARAMS_BY_CHANNEL: dict[str, type[_Params]] = {
    "coupon": CouponParams,
    "email": MessageParams,
    "sms": MessageParams,
    "push": MessageParams,
    "call": CallParams,
    "webhook": WebhookParams,
}
