"""What events mean (purchase values, traits) and the bounded daily activity history."""

from __future__ import annotations

from typing import Any

import pytest
from stage_engine.lifecycle import LifecycleConfig
from stage_engine.lifecycle.signals import (
    activity_in,
    add_activity,
    contact_traits,
    is_activity,
    purchase_value,
)

from tests.unit.stage_engine.builders import T0, event, track

CONFIG = LifecycleConfig(max_trait_chars=5)


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"revenue": 12.5}, 12.5),
        ({"revenue": 3, "total": 9}, 3.0),
        ({"total": "7.25"}, 7.25),
        ({"revenue": None, "total": 4}, 4.0),
        ({"revenue": True}, None),
        ({"revenue": -1}, None),
        ({"revenue": "NaN"}, None),
        ({"revenue": [1]}, None),
        ({}, None),
    ],
)
def test_purchase_value(properties: dict[str, Any], expected: float | None) -> None:
    assert purchase_value(track("Order Completed", T0, properties=properties), CONFIG) == expected


def test_only_the_configured_purchase_event_is_a_purchase() -> None:
    assert purchase_value(track("Order Refunded", T0, properties={"revenue": 5}), CONFIG) is None
    assert purchase_value(event("page", T0, properties={"revenue": 5}), CONFIG) is None


def test_contact_traits_are_allow_listed_scalars_cut_to_length() -> None:
    traits = {"email": "a-long@example.com", "phone": {"n": 1}, "plan": "gold", "locale": None}
    kept = contact_traits(event("identify", T0, traits=traits), CONFIG)
    assert kept == {"email": "a-lon", "locale": None}


def test_activity_types_and_exclusions() -> None:
    config = LifecycleConfig(activity_excluded_events=("Email Opened", "Background"))
    assert is_activity(track("Product Viewed", T0), config)
    assert is_activity(event("screen", T0, name="Cart"), config)
    assert not is_activity(track("Email Opened", T0), config)
    assert not is_activity(event("screen", T0, name="Background"), config)
    assert not is_activity(event("identify", T0), config)
    assert not is_activity(event("alias", T0), config)


@pytest.mark.parametrize(
    ("first_day", "counts", "day", "expected"),
    [
        (0, (), 100, (100, (1,))),
        (100, (1,), 100, (100, (2,))),
        (100, (1,), 102, (100, (1, 0, 1))),
        (100, (1, 2, 3), 104, (101, (2, 3, 0, 1))),  # keeps 4 days
        (100, (1,), 200, (200, (1,))),  # a long gap forgets everything
        (100, (1, 0, 1), 101, (100, (1, 1, 1))),  # late, inside the counted days
        (100, (1,), 98, (98, (1, 0, 1))),  # late, before them but in the window
        (100, (0, 0, 0, 1), 99, (100, (0, 0, 0, 1))),  # late, out of the window
    ],
)
def test_add_activity_keeps_a_bounded_window(
    first_day: int, counts: tuple[int, ...], day: int, expected: tuple[int, tuple[int, ...]]
) -> None:
    assert add_activity(first_day, counts, day, 4) == expected


def test_activity_in_sums_an_inclusive_day_range() -> None:
    counts = (1, 2, 3, 4)
    assert activity_in(10, counts, 11, 12) == 5
    assert activity_in(10, counts, 0, 100) == 10
    assert activity_in(10, counts, 20, 30) == 0
    assert activity_in(10, counts, 0, 9) == 0
