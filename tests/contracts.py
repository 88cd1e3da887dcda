"""Sample records of each contract, for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.events import Event
from shared.notifications import Coupon, NotificationOutcome, OutcomeResult, outcome_id
from shared.transitions import Profile, Stage, Transition, TransitionData, TransitionKind

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def sample_event(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "message_id": "m-1",
        "type": "track",
        "event": "Order Completed",
        "user_id": "u-1",
        "timestamp": T0,
        "received_at": T0,
        "properties": {"revenue": 42.5, "currency": "CNY"},
        "traits": {},
        "context": {"ip": "127.0.0.1"},
        "source": "web",
    }
    fields.update(overrides)
    return Event.model_validate(fields)


def sample_transition() -> Transition:
    profile = Profile(
        stage=Stage.SILENT,
        stage_since=T0,
        first_seen_at=T0,
        orders=2,
        revenue=80.0,
        average_order_value=40.0,
        traits={"email": "a@example.com"},
    )
    data = TransitionData(
        user_id="u-1",
        kind=TransitionKind.STAGE_CHANGED,
        from_stage=Stage.ACTIVE,
        to_stage=Stage.SILENT,
        reason="inactivity",
        profile=profile,
    )
    return Transition.build(data, T0, discriminator="silent")


def sample_outcome() -> NotificationOutcome:
    return NotificationOutcome(
        id=outcome_id("tr-1", "coupon", 1, OutcomeResult.SENT),
        transition_id="tr-1",
        user_id="u-1",
        rule="silent_7d",
        action="coupon",
        channel="coupon",
        result=OutcomeResult.SENT,
        occurred_at=T0,
        coupon=Coupon(code="ABCD-1234", amount=10, currency="CNY", expires_at=T0),
    )
