"""Holdout, frequency caps and quiet hours: pure decisions with `now` as an argument."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from notifier.playbook import (
    CapsConfig,
    QuietHours,
    caps_allow,
    in_holdout,
    load_playbook,
    parse_playbook,
    plan,
    quiet_hours_release,
)

from shared.transitions import Stage
from tests.unit.notifier.factories import make_transition

USERS = [f"user-{n}" for n in range(10_000)]


# --- holdout -------------------------------------------------------------------------


def test_holdout_is_deterministic() -> None:
    first = [in_holdout(user, "silent_wakeup", 0.10) for user in USERS]
    again = [in_holdout(user, "silent_wakeup", 0.10) for user in USERS]
    assert first == again


@pytest.mark.parametrize("share", [0.05, 0.10, 0.5])
def test_holdout_takes_about_the_configured_share(share: float) -> None:
    held = sum(in_holdout(user, "silent_wakeup", share) for user in USERS)
    assert abs(held / len(USERS) - share) < 0.01


def test_holdout_edges_and_monotonicity() -> None:
    assert not any(in_holdout(user, "r", 0.0) for user in USERS[:1000])
    assert all(in_holdout(user, "r", 1.0) for user in USERS[:1000])
    # Raising the share only adds users to the control group, never swaps them.
    small = {user for user in USERS if in_holdout(user, "r", 0.05)}
    large = {user for user in USERS if in_holdout(user, "r", 0.10)}
    assert small < large


def test_each_rule_draws_its_own_control_group() -> None:
    a = {user for user in USERS if in_holdout(user, "silent_wakeup", 0.10)}
    b = {user for user in USERS if in_holdout(user, "churned_winback", 0.10)}
    assert a != b
    assert len(a & b) < 0.03 * len(USERS)  # independent: ~1 % overlap expected


def test_plan_marks_every_action_of_a_held_out_rule_and_honours_the_rule_share() -> None:
    playbook = load_playbook(None)
    for user in USERS[:500]:
        planned = plan(make_transition(to_stage=Stage.SILENT, user_id=user), playbook)
        assert {action.in_holdout for action in planned} == {
            in_holdout(user, "silent_wakeup", 0.10)
        }
    never = parse_playbook(
        {
            "holdout_share": 1.0,
            "rules": [
                {
                    "name": "r",
                    "holdout_share": 0.0,
                    "match": {"to_stage": "silent"},
                    "actions": [{"name": "a", "channel": "webhook"}],
                }
            ],
        }
    )
    assert not any(plan(make_transition(user_id=u), never)[0].in_holdout for u in USERS[:200])


# --- caps ----------------------------------------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CAPS = CapsConfig()


@pytest.mark.parametrize(
    ("hours_ago", "allowed"),
    [
        ([], True),
        ([23.9], False),  # one in the last 24 h
        ([24.1], True),
        ([25, 49], True),  # two this week
        ([25, 49, 73], False),  # three this week
        ([25, 49, 7 * 24 + 1], True),  # the oldest fell out of the week
        ([-1], True),  # a send "in the future" (clock skew) does not count
    ],
)
def test_caps_per_day_and_per_week(hours_ago: list[float], allowed: bool) -> None:
    sent = [NOW - timedelta(hours=h) for h in hours_ago]
    assert caps_allow(sent, NOW, CAPS, "email") is allowed


@pytest.mark.parametrize("channel", ["coupon", "call", "webhook"])
def test_exempt_channels_are_never_capped(channel: str) -> None:
    sent = [NOW - timedelta(minutes=m) for m in range(10)]
    assert caps_allow(sent, NOW, CAPS, channel)


def test_caps_are_configurable() -> None:
    caps = CapsConfig(per_day=2, per_week=2, exempt_channels=())
    assert caps_allow([NOW - timedelta(hours=1)], NOW, caps, "webhook")
    assert not caps_allow([NOW - timedelta(hours=1), NOW - timedelta(hours=30)], NOW, caps, "sms")
    assert not caps_allow([], NOW, CapsConfig(per_day=0), "email")


# --- quiet hours ---------------------------------------------------------------------

QUIET = QuietHours()


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "release"),
    [
        # Shanghai is UTC+8: 13:00 UTC is 21:00 local → wait until 08:00 local = 00:00 UTC.
        (utc(2026, 3, 10, 12, 59), "Asia/Shanghai", None),
        (utc(2026, 3, 10, 13, 0), "Asia/Shanghai", utc(2026, 3, 11, 0, 0)),
        (utc(2026, 3, 10, 18, 0), "Asia/Shanghai", utc(2026, 3, 11, 0, 0)),  # 02:00 local
        (utc(2026, 3, 10, 23, 59), "Asia/Shanghai", utc(2026, 3, 11, 0, 0)),
        (utc(2026, 3, 11, 0, 0), "Asia/Shanghai", None),
        # New York in winter is UTC-5: 03:00 UTC is 22:00 local (previous day).
        (utc(2026, 1, 10, 3, 0), "America/New_York", utc(2026, 1, 10, 13, 0)),
        (utc(2026, 1, 10, 14, 0), "America/New_York", None),
        # …and UTC-4 in summer: the same wall clock, a different UTC instant.
        (utc(2026, 7, 10, 3, 0), "America/New_York", utc(2026, 7, 10, 12, 0)),
        # No zone, or a zone that does not exist: the playbook's default (UTC).
        (utc(2026, 3, 10, 22, 0), None, utc(2026, 3, 11, 8, 0)),
        (utc(2026, 3, 10, 22, 0), "Not/AZone", utc(2026, 3, 11, 8, 0)),
        (utc(2026, 3, 10, 7, 59), "", utc(2026, 3, 10, 8, 0)),
        # Kathmandu is UTC+5:45.
        (utc(2026, 3, 10, 15, 15), "Asia/Kathmandu", utc(2026, 3, 11, 2, 15)),
        (utc(2026, 3, 10, 15, 14), "Asia/Kathmandu", None),
    ],
)
def test_quiet_hours_cross_midnight_in_the_users_zone(
    now: datetime, zone: str | None, release: datetime | None
) -> None:
    assert quiet_hours_release(now, zone, QUIET, "email") == release


def test_quiet_hours_across_a_dst_change() -> None:
    # Europe/Berlin springs forward on 2026-03-29 (02:00 → 03:00): 08:00 local is 06:00 UTC.
    release = quiet_hours_release(utc(2026, 3, 28, 22, 0), "Europe/Berlin", QUIET, "sms")
    assert release == utc(2026, 3, 29, 6, 0)


def test_a_window_within_one_day_and_an_empty_window() -> None:
    siesta = QuietHours(start=time(13, 0), end=time(15, 0))
    assert quiet_hours_release(utc(2026, 3, 10, 14, 0), "UTC", siesta, "push") == utc(
        2026, 3, 10, 15, 0
    )
    assert quiet_hours_release(utc(2026, 3, 10, 15, 0), "UTC", siesta, "push") is None
    assert quiet_hours_release(utc(2026, 3, 10, 12, 0), "UTC", siesta, "push") is None
    never = QuietHours(start=time(0, 0), end=time(0, 0))
    assert quiet_hours_release(utc(2026, 3, 10, 2, 0), "UTC", never, "push") is None


@pytest.mark.parametrize("channel", ["coupon", "webhook"])
def test_channels_outside_quiet_hours_go_now(channel: str) -> None:
    assert quiet_hours_release(utc(2026, 3, 10, 23, 0), "UTC", QUIET, channel) is None


ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Adelaide"]


@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2035, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(ZONES),
)
def test_a_release_is_the_next_end_of_the_window_and_never_in_the_past(
    now: datetime, zone: str
) -> None:
    release = quiet_hours_release(now, zone, QUIET, "email")
    local = now.astimezone(ZoneInfo(zone)).time().replace(tzinfo=None)
    in_window = local >= QUIET.start or local < QUIET.end
    assert (release is not None) is in_window
    if release is not None:
        assert release.tzinfo is not None
        assert now < release <= now + timedelta(hours=12)
        # Released outside quiet hours (the end of the window, save DST gaps).
        assert quiet_hours_release(release, zone, QUIET, "email") is None
