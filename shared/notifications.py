"""The NotificationOutcome contract on `lifecycle.notifications.v1`: one per attempt result."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_ID_NAMESPACE = uuid.UUID("0b6f2a4e-1f0e-4f57-8c61-2d7e3e9c5a10")


class OutcomeResult(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    FAILED = "failed"


class Coupon(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    amount: float
    currency: str
    expires_at: AwareDatetime


class NotificationOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(description="deterministic: transition id, action and attempt")
    transition_id: str
    user_id: str
    rule: str
    action: str = Field(description="the action's name within its rule")
    channel: str
    result: OutcomeResult
    reason: str | None = Field(default=None, description="why skipped or failed, e.g. consent")
    attempt: int = Field(default=1, ge=1)
    coupon: Coupon | None = None
    provider_message_id: str | None = None
    occurred_at: AwareDatetime


def outcome_id(transition_id: str, action: str, attempt: int, result: OutcomeResult) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{transition_id}|{action}|{attempt}|{result.value}"))
