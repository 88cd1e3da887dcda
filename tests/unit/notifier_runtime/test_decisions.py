"""Holdout, consent, quiet hours and caps for one planned action: the order and each rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from notifier.decisions import (
    REASON_CAP,
    REASON_CONSENT,
    REASON_HOLDOUT,
    Decision,
    consent_allows,
    decide,
)
from notifier.playbook import PlannedAction, Playbook, parse_playbook

NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 1, 5, 22, 30, tzinfo=UTC)
RULES = [
    {
        "name": "care",
        "match": {"kind": "stage_changed"},
        "actions": [{"name": "email", "channel": "email", "params": {"template": "care_checkin"}}],
    }
]


def _playbook(**top: Any) -> Playbook:
    return parse_playbook({"rules": RULES, **top})


def _action(channel: str = "email", *, held_out: bool = False) -> PlannedAction:
    return PlannedAction(
        rule="care", action=channel, channel=channel, params={}, in_holdout=held_out
    )


def _decide(
    action: PlannedAction,
    *,
    traits: dict[str, Any] | None = None,
    suppressed: tuple[str, ...] = (),
    sent_at: tuple[datetime, ...] = (),
    now: datetime = NOON,
    playbook: Playbook | None = None,
) -> Decision:
    return decide(
        action,
        traits=traits or {},
        suppressed_channels=suppressed,
        sent_at=sent_at,
        now=now,
        playbook=playbook or _playbook(),
    )


@pytest.mark.parametrize(
    ("traits", "suppressed", "channel", "allowed"),
    [
        ({}, (), "email", True),
        ({"unsubscribed": True}, (), "email", False),
        ({"unsubscribed": "true"}, (), "sms", False),
        ({"unsubscribed": "no"}, (), "sms", True),
        ({"unsubscribed": True}, (), "coupon", True),  # a coupon is not a message
        ({"unsubscribed": True}, (), "webhook", True),  # informs a system, not the person
        ({"email_opt_out": "yes"}, (), "email", False),
        ({"email_opt_out": "yes"}, (), "sms", True),
        ({"sms_opt_out": 1}, (), "sms", False),
        ({"push_opt_out": False}, (), "push", True),
        ({}, ("*",), "call", False),
        ({}, ("*",), "coupon", True),
        ({}, ("sms",), "sms", False),
        ({}, ("sms",), "email", True),
        ({}, ("coupon",), "coupon", False),  # named explicitly: honoured
    ],
)
def test_consent(
    traits: dict[str, Any], suppressed: tuple[str, ...], channel: str, allowed: bool
) -> None:
    assert consent_allows(traits, suppressed, channel) is allowed


def test_holdout_comes_first_so_the_control_group_does_not_depend_on_consent() -> None:
    decision = _decide(_action(held_out=True), traits={"unsubscribed": True})
    assert decision.skip_reason == REASON_HOLDOUT


def test_consent_before_caps() -> None:
    decision = _decide(_action(), traits={"unsubscribed": True}, sent_at=(NOON,))
    assert decision.skip_reason == REASON_CONSENT


def test_a_message_in_quiet_hours_is_deferred_to_the_window_end() -> None:
    decision = _decide(_action(), now=NIGHT)
    assert decision == Decision(None, datetime(2026, 1, 6, 8, 0, tzinfo=UTC), deferred=True)


def test_quiet_hours_follow_the_users_time_zone() -> None:
    # 22:30 UTC is 06:30 in Shanghai: quiet until 08:00 there, 00:00 UTC.
    decision = _decide(_action(), now=NIGHT, traits={"timezone": "Asia/Shanghai"})
    assert decision.due_at == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    # 12:00 UTC is 04:00 in Los Angeles: quiet until 16:00 UTC.
    decision = _decide(_action(), traits={"timezone": "America/Los_Angeles"})
    assert decision.due_at == datetime(2026, 1, 5, 16, 0, tzinfo=UTC)


def test_caps_count_at_the_moment_the_message_would_go() -> None:
    # Sent at 09:00; deferred to 08:00 tomorrow: 23 h later, still within the day.
    capped = _decide(_action(), now=NIGHT, sent_at=(NIGHT.replace(hour=9),))
    assert capped.skip_reason == REASON_CAP
    # Sent at 07:00 today: 25 h before tomorrow 08:00, so the daily cap allows it.
    allowed = _decide(_action(), now=NIGHT, sent_at=(NIGHT.replace(hour=7),))
    assert allowed.skip_reason is None
    assert allowed.deferred


def test_weekly_cap() -> None:
    week = tuple(NOON - timedelta(days=d) for d in (1, 2, 3))
    assert _decide(_action(), sent_at=week).skip_reason == REASON_CAP
    assert _decide(_action(), sent_at=week[:2]).skip_reason is None


def test_exempt_channels_ignore_caps_and_quiet_hours_only_listed_channels() -> None:
    decision = _decide(_action("coupon"), now=NIGHT, sent_at=(NIGHT,) * 5)
    assert decision == Decision(None, NIGHT)
    quiet_email_only = _playbook(quiet_hours={"channels": ["email"]})
    assert not _decide(_action("sms"), now=NIGHT, playbook=quiet_email_only).deferred
