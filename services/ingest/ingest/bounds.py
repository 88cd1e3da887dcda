"""What ingest refuses because the stores or the stage engine could not take it.

- Times: every time a client sends (`timestamp`, `originalTimestamp`, `sentAt`) must lie
  in [1970-01-01, 2200-01-01), so no skew correction can overflow; the corrected event
  time must lie in [earliest, received + max future] (defaults 2000-01-01 and 24 h).
  Refused, not clamped: a clamped time would silently move a user's history.
- Amounts: the properties the engine reads as money or counts (`revenue`, `total`, ...)
  must be finite numbers (or numeric strings) within +-max_amount, or the engine's sums
  would leave a double's range. Non-finite numbers elsewhere cannot be written as JSON
  and are stored as null.
- Ids and names (the request models' patterns): no control characters, at most what
  the stores hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Control characters (C0, DEL, C1): PostgreSQL refuses NUL in text, and the others
# have no place in an id or a name.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"
ID_MAX_CHARS = 200  # the stores' key columns: String(200)
NAME_MAX_CHARS = 500

CLIENT_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
CLIENT_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(hours=24)
MAX_AMOUNT = 1e12
AMOUNT_PROPERTIES: tuple[str, ...] = ("revenue", "total", "value", "price", "quantity")


class OutOfBoundsError(ValueError):
    """A field outside its documented bound; `field` is camelCase as the client sent it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Bounds:
    earliest_event_time: datetime = EARLIEST_EVENT_TIME
    max_future: timedelta = MAX_FUTURE
    max_amount: float = MAX_AMOUNT
    amount_properties: tuple[str, ...] = AMOUNT_PROPERTIES
    _amount_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_amount_names", frozenset(self.amount_properties))

    def check_client_time(self, field: str, moment: datetime | None) -> None:
        # The year alone settles nearly every time (an offset moves it by a day at most);
        # comparing aware times calls the parsed tzinfo's utcoffset() twice, which costs
        # more than the rest of the check (docs/performance.md).
        if moment is None or CLIENT_TIME_MIN.year < moment.year < CLIENT_TIME_MAX.year - 1:
            return
        if not CLIENT_TIME_MIN <= moment < CLIENT_TIME_MAX:
            raise OutOfBoundsError(
                field,
                f"{moment.isoformat()} is outside [{CLIENT_TIME_MIN.date()}, "
                f"{CLIENT_TIME_MAX.date()})",
            )

    def check_event_time(self, field: str, event_time: datetime, received_at: datetime) -> None:
        latest = received_at + self.max_future
        after_earliest = (
            event_time.year > self.earliest_event_time.year + 1
            or event_time >= self.earliest_event_time
        )
        if not (after_earliest and event_time <= latest):
            raise OutOfBoundsError(
                field,
                f"event time {event_time.isoformat()} (after clock-skew correction) is "
                f"outside [{self.earliest_event_time.isoformat()}, received time + "
                f"{self.max_future}]",
            )

    def check_amounts(self, properties: Mapping[str, Any] | None) -> None:
        if not properties or self._amount_names.isdisjoint(properties):
            return
        for name in self.amount_properties:
            raw = properties.get(name)
            if raw is None or isinstance(raw, bool):
                continue
            amount = _as_number(raw)
            if amount is not None and not (
                math.isfinite(amount) and abs(amount) <= self.max_amount
            ):
                raise OutOfBoundsError(
                    f"properties.{name}",
                    f"{raw!r} is not a finite number within +-{self.max_amount:g}",
                )


def _as_number(raw: object) -> float | None:
    """The value as the engine reads it: a number, or a string that parses as one."""
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:  # an integer beyond a double
            return math.inf
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return None
    return None


DEFAULT_BOUNDS = Bounds()
