"""Transitions to feed the playbook and the channels in tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifier.channels.base import Delivery
from notifier.playbook import PlannedAction

from shared.notifications import Coupon
from shared.transitions import (
    Profile,
    PurchaseLevel,
    Rfm,
    Stage,
    Transition,
    TransitionData,
    TransitionKind,
)

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CONTACT = {
    "email": "ada@example.com",
    "phone": "+86 138-0000-0000",
    "first_name": "Ada",
    "name": "Ada Lovelace",
    "timezone": "Asia/Shanghai",
}


def make_transition(
    kind: TransitionKind = TransitionKind.STAGE_CHANGED,
    *,
    to_stage: Stage = Stage.SILENT,
    from_stage: Stage | None = Stage.ACTIVE,
    milestone_days: int | None = None,
    purchase_level: PurchaseLevel | None = None,
    flag: str | None = None,
    user_id: str = "u-1",
    traits: dict[str, Any] | None = None,
    profile_purchase_level: PurchaseLevel = PurchaseLevel.NONE,
    rfm_segment: str | None = None,
    risk_flags: tuple[str, ...] = (),
    at: datetime = T0,
) -> Transition:
    profile = Profile(
        stage=to_stage,
        stage_since=at,
        first_seen_at=at,
        last_active_at=at,
        orders=2,
        revenue=80.0,
        average_order_value=40.0,
        purchase_level=profile_purchase_level,
        rfm=(
            Rfm(recency=2, frequency=2, monetary=3, segment=rfm_segment)
            if rfm_segment is not None
            else None
        ),
        risk_flags=risk_flags,
        traits=dict(CONTACT) if traits is None else traits,
    )
    data = TransitionData(
        user_id=user_id,
        kind=kind,
        from_stage=from_stage,
        to_stage=to_stage,
        reason="test",
        milestone_days=milestone_days,
        purchase_level=purchase_level,
        flag=flag,
        profile=profile,
    )
    discriminator = f"{to_stage}|{milestone_days}|{purchase_level}|{flag}"
    return Transition.build(data, at, discriminator=discriminator)


def make_delivery(
    channel: str,
    params: dict[str, Any],
    *,
    transition: Transition | None = None,
    coupon: Coupon | None = None,
    rule: str = "silent_wakeup",
    action: str | None = None,
    idempotency_key: str | None = None,
) -> Delivery:
    transition = transition or make_transition()
    name = action or f"{channel}_action"
    planned = PlannedAction(
        rule=rule, action=name, channel=channel, params=params, in_holdout=False
    )
    key = idempotency_key or f"{transition.id}/{planned.ledger_key}"
    return Delivery(transition=transition, action=planned, idempotency_key=key, coupon=coupon)


def make_coupon(code: str = "ABCD-EFGH-JKMNP") -> Coupon:
    return Coupon(
        code=code, amount=10, currency="CNY", expires_at=datetime(2026, 1, 19, tzinfo=UTC)
    )
