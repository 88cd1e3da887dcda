"""What an event means to the rules: signup, activity, purchase, negative feedback, traits.

The mapping follows Segment's spec (track/page/screen/identify) and its
e-commerce spec (`Order Completed` with `revenue`, else `total`); names are
configurable in LifecycleConfig.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from shared.events import Event
from stage_engine.lifecycle.config import LifecycleConfig
from stage_engine.lifecycle.state import ActivityCounts, TraitValue

_ACTIVITY_TYPES = frozenset(("track", "page", "screen"))


def utc(moment: datetime) -> datetime:
    """The same instant in UTC, so ISO strings and transition ids do not depend on offsets."""
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def event_name(event: Event) -> str | None:
    """A track's event name, or a page/screen name."""
    return event.event if event.type == "track" else event.name


def is_activity(event: Event, config: LifecycleConfig) -> bool:
    if event.type not in _ACTIVITY_TYPES:
        return False
    excluded = config.activity_excluded_events
    return not excluded or event_name(event) not in excluded


def is_signup(event: Event, config: LifecycleConfig) -> bool:
    """A signup event, or any event that carries a user id (the first one signs up)."""
    if event.user_id:
        return True
    return event.type == "track" and event.event in config.signup_events


def is_negative_feedback(event: Event, config: LifecycleConfig) -> bool:
    return event.type == "track" and event.event in config.negative_feedback_events


def purchase_value(event: Event, config: LifecycleConfig) -> float | None:
    """The order value of a purchase event, or None when the event is no purchase.

    An order event without a usable value (missing, negative, not a number)
    is not counted as a purchase: revenue must be summable.
    """
    if event.type != "track" or event.event not in config.purchase_events:
        return None
    properties = event.properties
    for name in config.purchase_value_properties:
        value = _as_amount(properties.get(name))
        if value is not None:
            return value
    return None


def _as_amount(raw: object) -> float | None:
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) and value >= 0.0 else None


def contact_traits(event: Event, config: LifecycleConfig) -> dict[str, TraitValue]:
    """The allow-listed traits an event carries, scalars only, long strings cut."""
    traits = event.traits
    if not traits:
        return {}
    kept: dict[str, TraitValue] = {}
    for name in config.contact_traits:
        if name not in traits:
            continue
        value = traits[name]
        if isinstance(value, str):
            kept[name] = value[: config.max_trait_chars]
        elif value is None or isinstance(value, bool | int | float):
            kept[name] = value
    return kept


def add_activity(
    first_day: int, counts: ActivityCounts, day: int, keep_days: int
) -> tuple[int, ActivityCounts]:
    """Count one activity on `day` (a date ordinal), keeping the newest `keep_days` days."""
    last_day = first_day + len(counts) - 1
    if not counts or day - last_day >= keep_days:
        return day, (1,)  # nothing counted yet, or all of it too old now
    if day > last_day:
        grown = (*counts, *(0,) * (day - last_day - 1), 1)
        cut = max(len(grown) - keep_days, 0)
        return first_day + cut, grown[cut:]
    if day >= first_day:
        index = day - first_day
        return first_day, (*counts[:index], counts[index] + 1, *counts[index + 1 :])
    # A late event before the first counted day: kept while inside the window.
    if day <= last_day - keep_days:
        return first_day, counts
    return day, (1, *(0,) * (first_day - day - 1), *counts)


def activity_in(first_day: int, counts: ActivityCounts, from_day: int, to_day: int) -> int:
    """Activity events on days from_day..to_day inclusive."""
    start = max(from_day - first_day, 0)
    stop = to_day - first_day + 1
    return sum(counts[start:stop]) if stop > start else 0
