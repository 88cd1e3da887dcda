"""A validated Segment call -> the shared Event, as Segment normalises calls.

- `messageId` is generated when missing (a random UUID).
- `receivedAt` and `source` are the server's: whatever a client sends for them is ignored.
- Event time corrects client clock skew: timestamp = receivedAt - (sentAt - clientTime),
  where clientTime is the call's `timestamp` (else `originalTimestamp`) and `sentAt`
  comes from the call or else its batch. Without `sentAt` the client time is used
  as is; without a client time, `receivedAt`. Times without an offset are UTC.
- track, identify, page, screen and group need `userId` or `anonymousId`.
- Times and amounts outside ingest/bounds.py's bounds are refused, naming the field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from ingest.bounds import DEFAULT_BOUNDS, Bounds, OutOfBoundsError
from ingest.models import AnyCall
from shared.events import Event, EventType


@dataclass(frozen=True, slots=True)
class InvalidCallError(Exception):
    """One call that cannot become an Event; `field` is camelCase as the client sent it."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the request adds to each of its calls."""

    received_at: datetime
    source: str
    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    bounds: Bounds = DEFAULT_BOUNDS


# The fields each call type carries beyond the common ones (Event's names).
_OWN_FIELDS: dict[EventType, tuple[str, ...]] = {
    "track": ("event", "properties"),
    "identify": ("traits",),
    "page": ("name", "category", "properties"),
    "screen": ("name", "category", "properties"),
    "group": ("group_id", "traits"),
    "alias": ("previous_id",),
}
_NEEDS_ID: frozenset[EventType] = frozenset(("track", "identify", "page", "screen", "group"))


def to_event(call: AnyCall, call_type: EventType, envelope: Envelope) -> Event:
    """The call as the shared Event model (the reference for record.py's fast encoding)."""
    fields = event_fields(call, call_type, envelope)
    try:
        return Event(**{name: value for name, value in fields.items() if value is not None})
    except ValidationError as exc:  # a bound of Event the request models do not mirror
        first = exc.errors(include_url=False)[0]
        field = ".".join(to_camel(str(part)) for part in first["loc"]) or "body"
        raise InvalidCallError(field, first["msg"]) from None


def event_fields(call: AnyCall, call_type: EventType, envelope: Envelope) -> dict[str, Any]:
    """The Event's fields (by Event's names; absent ones None) for one validated call."""
    # A model's __dict__ holds its field values: plain dict reads, no attribute misses.
    given: dict[str, Any] = call.__dict__
    user_id, anonymous_id = given["user_id"], given["anonymous_id"]
    if user_id is None and anonymous_id is None and call_type in _NEEDS_ID:
        raise InvalidCallError("userId", f"{call_type} needs userId or anonymousId")
    time_field = "timestamp" if given["timestamp"] else "originalTimestamp"
    client_time = _aware(given["timestamp"] or given["original_timestamp"])
    sent_at = _aware(given["sent_at"] or envelope.sent_at)
    bounds = envelope.bounds
    try:
        bounds.check_client_time(time_field, client_time)
        bounds.check_client_time("sentAt", sent_at)
        moment = event_time(client_time, sent_at, envelope.received_at)
        bounds.check_event_time(time_field, moment, envelope.received_at)
        if "properties" in given:
            bounds.check_amounts(given["properties"])
    except OutOfBoundsError as exc:
        raise InvalidCallError(exc.field, exc.reason) from None
    fields: dict[str, Any] = {
        "message_id": given["message_id"] or str(uuid.uuid4()),
        "type": call_type,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": moment,
        "received_at": envelope.received_at,
        "sent_at": sent_at,
        "original_timestamp": client_time,
        "context": _merged(envelope.context, given["context"]),
        "source": envelope.source,
    }
    for name in _OWN_FIELDS[call_type]:
        fields[name] = given[name]
    return fields


def event_time(
    client_time: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    if client_time is None:
        return received_at
    if sent_at is None:
        return client_time
    try:
        return received_at - (sent_at - client_time)
    except OverflowError:
        raise InvalidCallError(
            "sentAt",
            f"sentAt {sent_at.isoformat()} and timestamp {client_time.isoformat()} "
            "are too far apart to correct the clock skew",
        ) from None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _merged(outer: dict[str, Any] | None, inner: dict[str, Any] | None) -> dict[str, Any]:
    if not outer:
        return inner or {}
    if not inner:
        return outer
    return {**outer, **inner}
