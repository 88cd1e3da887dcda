"""One profile's lifecycle state: small, bounded, and cheap to (de)serialise.

UserState is the immutable value the runtime stores. The rules work on a mutable
Draft of it (`thaw()` / `freeze()`): advance() runs ~20k times a second, and one
copy in and one out is far cheaper than a dataclasses.replace() per rule. It is a
NamedTuple: building one is a quarter of a frozen dataclass's cost (which sets each
of 23 fields through object.__setattr__), and the timer loop builds two per timer.

Every datetime is UTC. to_dict() (stored format 1; stored.py has the compact
format 2) leaves datetimes as datetime objects: orjson writes them as RFC 3339
text several times faster than isoformat() would, and from_dict() reads either
form back. The dict carries a format version `v` so a later layout can still
read this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from shared.errors import LifecycleError
from shared.transitions import PurchaseLevel, Stage
from stage_engine.lifecycle.rfm import RfmScore

FORMAT_VERSION = 1

TraitValue = str | int | float | bool | None
# Activity events per day, day after day from `activity_first_day` (a date
# ordinal): at most 2 x activity_window_days counts, so the state stays bounded.
ActivityCounts = tuple[int, ...]
_ZERO = timedelta(0)
_new_tuple = tuple.__new__
EnumT = TypeVar("EnumT", bound=Enum)


class StateFormatError(LifecycleError, ValueError):
    """A stored state dict that this version cannot read; names the bad field."""


class ValueOutOfRangeError(LifecycleError, ValueError):
    """An event would push a user's figure (revenue) past what a float holds: the
    event is refused (the runtime dead-letters it) rather than stored as null."""


def finite_sum(name: str, total: float, value: float) -> float:
    """`total + value`, or ValueOutOfRangeError when the sum is no longer finite."""
    result = total + value
    if not math.isfinite(result):
        raise ValueOutOfRangeError(f"{name} {total!r} + {value!r} is not a finite number")
    return result


class UserState(NamedTuple):
    """What the rules know about one profile key (user id, or anonymous id)."""

    user_id: str
    is_anonymous: bool
    stage: Stage
    stage_since: datetime
    next_due_at: datetime | None
    last_event_at: datetime
    first_seen_at: datetime
    signed_up_at: datetime | None = None
    last_active_at: datetime | None = None
    orders: int = 0
    revenue: float = 0.0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    last_order_value: float = 0.0
    purchase_level: PurchaseLevel = PurchaseLevel.NONE
    rfm: RfmScore | None = None
    risk_flags: tuple[str, ...] = ()
    last_negative_feedback_at: datetime | None = None
    # Largest milestone (days) already emitted in the current inactivity episode.
    milestone_reached_days: int = 0
    activity_first_day: int = 0
    activity_counts: ActivityCounts = ()
    # Shared by states built without traits: never changed in place (the rules replace it).
    traits: dict[str, TraitValue] = {}  # noqa: RUF012
    traits_at: datetime | None = None

    @property
    def average_order_value(self) -> float:
        return self.revenue / self.orders if self.orders else 0.0

    def thaw(self) -> Draft:
        # Draft declares the same fields in the same order (a unit test compares them)
        return Draft(*self)

    def to_dict(self) -> dict[str, Any]:
        """An orjson-serialisable dict (datetimes stay datetime objects), stable field order."""
        rfm = self.rfm
        return {
            "v": FORMAT_VERSION,
            "user_id": self.user_id,
            "is_anonymous": self.is_anonymous,
            "stage": self.stage.value,
            "stage_since": self.stage_since,
            "next_due_at": self.next_due_at,
            "last_event_at": self.last_event_at,
            "first_seen_at": self.first_seen_at,
            "signed_up_at": self.signed_up_at,
            "last_active_at": self.last_active_at,
            "orders": self.orders,
            "revenue": self.revenue,
            "first_order_at": self.first_order_at,
            "last_order_at": self.last_order_at,
            "last_order_value": self.last_order_value,
            "purchase_level": self.purchase_level.value,
            "rfm": None if rfm is None else list(rfm),
            "risk_flags": list(self.risk_flags),
            "last_negative_feedback_at": self.last_negative_feedback_at,
            "milestone_reached_days": self.milestone_reached_days,
            # [first day ordinal, count, count, ...]: compact and quick to build.
            "activity": [self.activity_first_day, *self.activity_counts],
            "traits": dict(self.traits),
            "traits_at": self.traits_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        """The inverse of to_dict; StateFormatError names the first unreadable field."""
        version = data.get("v")
        if version != FORMAT_VERSION:
            raise StateFormatError(f"state field 'v'={version!r}: expected {FORMAT_VERSION}")
        try:
            rfm = data["rfm"]
            activity = data["activity"]
            return cls(
                data["user_id"],
                data["is_anonymous"],
                member(STAGES, "stage", data["stage"]),
                from_iso(data["stage_since"]),
                opt_from_iso(data["next_due_at"]),
                from_iso(data["last_event_at"]),
                from_iso(data["first_seen_at"]),
                opt_from_iso(data["signed_up_at"]),
                opt_from_iso(data["last_active_at"]),
                data["orders"],
                float(data["revenue"]),
                opt_from_iso(data["first_order_at"]),
                opt_from_iso(data["last_order_at"]),
                float(data["last_order_value"]),
                member(LEVELS, "purchase_level", data["purchase_level"]),
                None if rfm is None else RfmScore(*rfm),
                tuple(data["risk_flags"]),
                opt_from_iso(data["last_negative_feedback_at"]),
                data["milestone_reached_days"],
                activity[0],
                tuple(activity[1:]),
                dict(data["traits"]),
                opt_from_iso(data["traits_at"]),
            )
        except KeyError as exc:
            raise StateFormatError(f"state field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            who = data.get("user_id")
            raise StateFormatError(f"state of {who!r} is unreadable: {exc}") from None


@dataclass(slots=True)
class Draft:
    """A mutable working copy of a UserState, with the same fields in the same order."""

    user_id: str
    is_anonymous: bool
    stage: Stage
    stage_since: datetime
    next_due_at: datetime | None
    last_event_at: datetime
    first_seen_at: datetime
    signed_up_at: datetime | None = None
    last_active_at: datetime | None = None
    orders: int = 0
    revenue: float = 0.0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    last_order_value: float = 0.0
    purchase_level: PurchaseLevel = PurchaseLevel.NONE
    rfm: RfmScore | None = None
    risk_flags: tuple[str, ...] = ()
    last_negative_feedback_at: datetime | None = None
    milestone_reached_days: int = 0
    activity_first_day: int = 0
    activity_counts: ActivityCounts = ()
    traits: dict[str, TraitValue] = field(default_factory=dict)
    traits_at: datetime | None = None

    @property
    def average_order_value(self) -> float:
        return self.revenue / self.orders if self.orders else 0.0

    def freeze(self) -> UserState:
        # Read field by field: the interpreter's cached slot reads are twice as fast
        # as one attrgetter over all 23 names. tuple.__new__ skips the NamedTuple's
        # generated __new__ (23 arguments to bind).
        return _new_tuple(
            UserState,
            (
                self.user_id,
                self.is_anonymous,
                self.stage,
                self.stage_since,
                self.next_due_at,
                self.last_event_at,
                self.first_seen_at,
                self.signed_up_at,
                self.last_active_at,
                self.orders,
                self.revenue,
                self.first_order_at,
                self.last_order_at,
                self.last_order_value,
                self.purchase_level,
                self.rfm,
                self.risk_flags,
                self.last_negative_feedback_at,
                self.milestone_reached_days,
                self.activity_first_day,
                self.activity_counts,
                self.traits,
                self.traits_at,
            ),
        )


STAGES = {stage.value: stage for stage in Stage}
LEVELS = {level.value: level for level in PurchaseLevel}


def member(members: dict[str, EnumT], field: str, value: str) -> EnumT:
    """A dict lookup: several times cheaper than calling the enum class."""
    found = members.get(value)
    if found is None:
        raise ValueError(f"field {field!r}={value!r} is not one of {sorted(members)}")
    return found


def from_iso(value: str | datetime) -> datetime:
    """A UTC datetime from ISO 8601 text (stored form) or a datetime (to_dict form)."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return datetime.fromisoformat(value)  # the stored form: the fast path
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"datetime {value!r} has no UTC offset")
    if offset != _ZERO:
        raise ValueError(f"datetime {value!r} is not in UTC")
    return moment


def opt_from_iso(value: str | datetime | None) -> datetime | None:
    return None if value is None else from_iso(value)
