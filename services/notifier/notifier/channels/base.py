"""What every channel takes and gives, and the two kinds of failure the runtime tells apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notifier.playbook import PlannedAction
from shared.notifications import Coupon
from shared.transitions import Transition


@dataclass(frozen=True)
class Delivery:
    transition: Transition
    action: PlannedAction
    idempotency_key: (
        str  # stable across retries of this (transition, action): providers de-duplicate
    )
    coupon: Coupon | None = None  # issued by an earlier action of the same rule, if any


@dataclass(frozen=True)
class ChannelResult:
    provider_message_id: str | None = None
    coupon: Coupon | None = None


class ChannelError(Exception):
    """Base of the channel failures; the message says what failed, never a secret."""


class TransientChannelError(ChannelError):
    """Retry later with the same idempotency key: timeouts, connection errors, 5xx, 408, 429.

    The outcome may be ambiguous (a timeout after the provider acted); the
    idempotency key is what makes the retry safe.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # a provider's Retry-After, when it gave one


class PermanentChannelError(ChannelError):
    """Never retry: other 4xx, a missing or bad address, a template that cannot render."""


class Channel(Protocol):
    name: str

    async def send(self, delivery: Delivery) -> ChannelResult: ...

    async def aclose(self) -> None: ...
