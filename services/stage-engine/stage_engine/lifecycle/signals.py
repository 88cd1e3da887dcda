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
from stage_engine.lifecycle.state import ActivityDays, TraitValue

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


def add_activity(days: ActivityDays, day: int, keep_days: int) -> ActivityDays:
    """Count one activity on `day`, keeping only the newest `keep_days` days."""
    if days and days[-1][0] == day:
        return (*days[:-1], (day, days[-1][1] + 1))
    if not days or days[-1][0] < day:
        oldest = day - keep_days
        stale = days and days[0][0] <= oldest
        kept = tuple(entry for entry in days if entry[0] > oldest) if stale else days
        return (*kept, (day, 1))
    # A late event: insert in order, unless it falls out of the window.
    if day <= days[-1][0] - keep_days:
        return days
    counts = dict(days)
    counts[day] = counts.get(day, 0) + 1
    return tuple(sorted(counts.items()))


def activity_in(days: ActivityDays, first_day: int, last_day: int) -> int:
    """Activity events on days first_day..last_day inclusive."""
    return sum(count for day, count in days if first_day <= day <= last_day)
