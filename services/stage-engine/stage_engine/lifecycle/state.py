"""One profile's lifecycle state: small, bounded, and cheap to (de)serialise.

The runtime stores `to_dict()` as a JSON column. Every datetime is UTC and is
written in ISO 8601; the dict carries a format version `v` so a future change
of layout can be read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.transitions import PurchaseLevel, Stage
from stage_engine.lifecycle.rfm import RfmScore

FORMAT_VERSION = 1

TraitValue = str | int | float | bool | None
# (day ordinal, number of activity events that day), oldest first; at most
# 2 x activity_window_days entries, so the state stays bounded.
ActivityDays = tuple[tuple[int, int], ...]


class StateFormatError(ValueError):
    """A stored state dict that this version cannot read; names the bad field."""


@dataclass(frozen=True, slots=True)
class UserState:
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
    activity_days: ActivityDays = ()
    traits: dict[str, TraitValue] = field(default_factory=dict)
    traits_at: datetime | None = None

    @property
    def average_order_value(self) -> float:
        return self.revenue / self.orders if self.orders else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (str, int, float, bool, None, lists, dicts), stable field order."""
        rfm = self.rfm
        return {
            "v": FORMAT_VERSION,
            "user_id": self.user_id,
            "is_anonymous": self.is_anonymous,
            "stage": self.stage.value,
            "stage_since": self.stage_since.isoformat(),
            "next_due_at": _iso(self.next_due_at),
            "last_event_at": self.last_event_at.isoformat(),
            "first_seen_at": self.first_seen_at.isoformat(),
            "signed_up_at": _iso(self.signed_up_at),
            "last_active_at": _iso(self.last_active_at),
            "orders": self.orders,
            "revenue": self.revenue,
            "first_order_at": _iso(self.first_order_at),
            "last_order_at": _iso(self.last_order_at),
            "last_order_value": self.last_order_value,
            "purchase_level": self.purchase_level.value,
            "rfm": None if rfm is None else [rfm[0], rfm[1], rfm[2], rfm[3]],
            "risk_flags": list(self.risk_flags),
            "last_negative_feedback_at": _iso(self.last_negative_feedback_at),
            "milestone_reached_days": self.milestone_reached_days,
            "activity_days": [[day, count] for day, count in self.activity_days],
            "traits": dict(self.traits),
            "traits_at": _iso(self.traits_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        """The inverse of to_dict; StateFormatError names the first unreadable field."""
        version = data.get("v")
        if version != FORMAT_VERSION:
            raise StateFormatError(f"state field 'v'={version!r}: expected {FORMAT_VERSION}")
        try:
            rfm = data["rfm"]
            return cls(
                user_id=data["user_id"],
                is_anonymous=bool(data["is_anonymous"]),
                stage=Stage(data["stage"]),
                stage_since=_from_iso(data["stage_since"]),
                next_due_at=_opt_from_iso(data["next_due_at"]),
                last_event_at=_from_iso(data["last_event_at"]),
                first_seen_at=_from_iso(data["first_seen_at"]),
                signed_up_at=_opt_from_iso(data["signed_up_at"]),
                last_active_at=_opt_from_iso(data["last_active_at"]),
                orders=int(data["orders"]),
                revenue=float(data["revenue"]),
                first_order_at=_opt_from_iso(data["first_order_at"]),
                last_order_at=_opt_from_iso(data["last_order_at"]),
                last_order_value=float(data["last_order_value"]),
                purchase_level=PurchaseLevel(data["purchase_level"]),
                rfm=None if rfm is None else RfmScore(rfm[0], rfm[1], rfm[2], rfm[3]),
                risk_flags=tuple(data["risk_flags"]),
                last_negative_feedback_at=_opt_from_iso(data["last_negative_feedback_at"]),
                milestone_reached_days=int(data["milestone_reached_days"]),
                activity_days=tuple((day, count) for day, count in data["activity_days"]),
                traits=dict(data["traits"]),
                traits_at=_opt_from_iso(data["traits_at"]),
            )
        except KeyError as exc:
            raise StateFormatError(f"state field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise StateFormatError(
                f"state of {data.get('user_id')!r} is unreadable: {exc}"
            ) from None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"datetime {text!r} has no UTC offset")
    return moment if moment.utcoffset() == UTC.utcoffset(None) else moment.astimezone(UTC)


def _opt_from_iso(text: str | None) -> datetime | None:
    return None if text is None else _from_iso(text)
