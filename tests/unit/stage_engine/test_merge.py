"""merge_anonymous: an identify or alias folds the anonymous history into the user's profile."""

from __future__ import annotations

from typing import Any

from stage_engine.lifecycle import LifecycleConfig, advance, expire, merge_anonymous

from shared.transitions import PurchaseLevel, Stage
from tests.unit.stage_engine.builders import DAY, HOUR, T0, brief, event, order, page, run_events

CONFIG = LifecycleConfig(milestone_days=(100,))
ANON: dict[str, Any] = {"user_id": None, "anonymous_id": "a-1"}


def test_with_no_user_yet_the_anonymous_profile_becomes_the_users() -> None:
    anonymous, _ = run_events([page(T0, **ANON), order(30.0, T0 + HOUR, **ANON)], CONFIG)
    assert anonymous is not None
    merged, transitions = merge_anonymous(None, anonymous, "u-1", CONFIG)
    assert transitions == ()
    assert (merged.user_id, merged.is_anonymous, merged.stage) == ("u-1", False, Stage.PROSPECT)
    assert merged.orders == 1
    signed_up, transitions = advance(merged, event("identify", T0 + 2 * HOUR), CONFIG)
    assert [brief(t) for t in transitions] == [
        ("stage_changed", "prospect", "new", "signup", None, T0 + 2 * HOUR)
    ]
    assert transitions[0].subject == "u-1"
    assert signed_up.first_seen_at == T0


def test_anonymous_activity_after_the_users_silence_reactivates_at_its_time() -> None:
    user, _ = run_events([page(T0), order(100.0, T0 + HOUR)], CONFIG)
    assert user is not None
    user, _ = expire(user, T0 + 20 * DAY, CONFIG)
    assert (user.stage, user.stage_since) == (Stage.SILENT, T0 + HOUR + 7 * DAY)
    anonymous, _ = run_events(
        [
            page(T0 + 10 * DAY, **ANON),
            order(10.0, T0 + 11 * DAY, **ANON),
            event("identify", T0 + 11 * DAY, traits={"email": "a@example.com"}, **ANON),
        ],
        CONFIG,
    )
    assert anonymous is not None
    merged, transitions = merge_anonymous(user, anonymous, "u-1", CONFIG)
    assert [brief(t) for t in transitions] == [
        ("stage_changed", "silent", "active", "reactivated", None, T0 + 11 * DAY),
        ("purchase_level_changed", None, "active", "purchase", "repeat", T0 + 11 * DAY),
    ]
    assert (merged.orders, merged.revenue) == (2, 110.0)
    assert (merged.last_order_at, merged.last_order_value) == (T0 + 11 * DAY, 10.0)
    assert merged.first_order_at == T0 + HOUR
    assert merged.purchase_level is PurchaseLevel.REPEAT
    assert merged.last_active_at == T0 + 11 * DAY
    assert merged.traits == {"email": "a@example.com"}
    assert merged.next_due_at == T0 + 18 * DAY  # silent again 7 days after that activity
    assert sum(merged.activity_counts) == 4


def test_older_anonymous_history_adds_up_without_a_stage_change() -> None:
    anonymous, _ = run_events([page(T0 - 3 * DAY, **ANON), page(T0 - 2 * DAY, **ANON)], CONFIG)
    user, _ = run_events([page(T0)], CONFIG)
    assert anonymous is not None
    assert user is not None
    merged, transitions = merge_anonymous(user, anonymous, "u-1", CONFIG)
    assert transitions == ()
    assert (merged.stage, merged.signed_up_at, merged.first_seen_at) == (
        Stage.NEW,
        T0,
        T0 - 3 * DAY,
    )
    assert merged.last_active_at == T0
    assert merged.activity_first_day == (T0 - 3 * DAY).toordinal()


def test_a_signed_up_anonymous_profile_keeps_its_stage_over_an_unsigned_user() -> None:
    other_device, _ = advance(None, page(T0, user_id=None, anonymous_id="a-2"), CONFIG)
    unsigned_user = merge_anonymous(None, other_device, "u-1", CONFIG).state
    assert unsigned_user.stage is Stage.PROSPECT
    anonymous, _ = run_events(
        [page(T0 + HOUR, **ANON), event("track", T0 + 2 * HOUR, name="Signed Up", **ANON)],
        CONFIG,
    )
    assert anonymous is not None
    merged, transitions = merge_anonymous(unsigned_user, anonymous, "u-1", CONFIG)
    assert transitions == ()
    assert (merged.user_id, merged.is_anonymous) == ("u-1", False)
    assert (merged.stage, merged.signed_up_at, merged.first_seen_at) == (
        Stage.NEW,
        T0 + 2 * HOUR,
        T0,
    )
