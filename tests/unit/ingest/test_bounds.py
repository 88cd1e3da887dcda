"""Ingest refuses, naming the field, what the stores or the stage engine cannot take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ingest.bounds import Bounds
from ingest.models import SINGLE_REQUESTS
from ingest.normalise import Envelope, InvalidCallError, to_event
from pydantic import TypeAdapter, ValidationError

from shared.events import Event, EventType

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENVELOPE = Envelope(received_at=RECEIVED, source="web")


def _event(call_type: EventType = "track", **fields: Any) -> Event:
    fields = {"userId": "u", **({"event": "E"} if call_type == "track" else {}), **fields}
    call = TypeAdapter(SINGLE_REQUESTS[call_type]).validate_python(fields)
    return to_event(call, call_type, ENVELOPE)


def _refused_field(call_type: EventType = "track", **fields: Any) -> str:
    with pytest.raises(InvalidCallError) as refused:
        _event(call_type, **fields)
    return refused.value.field


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timestamp": "9999-12-31T23:00:00-05:00"}, "timestamp"),  # UTC would overflow
        ({"timestamp": "0001-01-01T00:00:00+05:00"}, "timestamp"),  # UTC would underflow
        ({"timestamp": "9999-12-31T00:00:00Z"}, "timestamp"),  # the due date would overflow
        ({"timestamp": "2200-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp"),  # before the earliest
        ({"timestamp": "2026-03-02T12:00:01Z"}, "timestamp"),  # more than 24 h ahead
        ({"originalTimestamp": "2026-03-02T12:00:01Z"}, "originalTimestamp"),
        ({"timestamp": "2026-03-01T12:00:00Z", "sentAt": "1969-12-31T23:59:59Z"}, "sentAt"),
        # Skew correction lands before the earliest event time.
        ({"timestamp": "1999-06-01T00:00:00Z", "sentAt": "2026-03-01T12:00:00Z"}, "timestamp"),
    ],
)
def test_times_outside_the_window_are_refused_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    assert _refused_field(**fields) == field


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": "2026-03-02T12:00:00Z"},  # exactly 24 h ahead
        {"timestamp": "2000-01-01T00:00:00Z"},  # exactly the earliest
        # A device clock reset to 1970, corrected by its sentAt.
        {"timestamp": "1970-01-01T00:00:05Z", "sentAt": "1970-01-01T00:00:10Z"},
    ],
)
def test_times_inside_the_window_are_accepted(fields: dict[str, Any]) -> None:
    event = _event(**fields)
    assert datetime(2000, 1, 1, tzinfo=UTC) <= event.timestamp <= RECEIVED + timedelta(days=1)


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"revenue": 1.7e308}, "properties.revenue"),
        ({"revenue": float("inf")}, "properties.revenue"),
        ({"total": float("nan")}, "properties.total"),
        ({"quantity": -1e13}, "properties.quantity"),
        ({"price": "1e400"}, "properties.price"),  # a numeric string the engine would parse
        ({"value": 2**70}, "properties.value"),
        ({"revenue": 1e12 + 1}, "properties.revenue"),
    ],
)
def test_amounts_the_engine_reads_must_be_finite_and_bounded(
    properties: dict[str, Any], field: str
) -> None:
    assert _refused_field(properties=properties) == field
    assert _refused_field("page", properties=properties) == field


def test_amounts_at_the_bound_and_other_numbers_are_accepted() -> None:
    properties = {"revenue": 1e12, "total": "12.50", "quantity": True, "elsewhere": 1e300}
    assert _event(properties=properties).properties == properties


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", "u\x00x"),
        ("anonymousId", "a\x1fb"),
        ("messageId", "m\x7f"),
        ("userId", "u\x85"),  # C1 control
        ("userId", "x" * 201),
        ("event", "Order\x00Completed"),
        ("event", "e" * 501),
    ],
)
def test_control_characters_and_over_long_ids_and_names_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(SINGLE_REQUESTS["track"]).validate_python(
            {"userId": "u", "event": "E", field: value}
        )
    assert refused.value.errors()[0]["loc"] == (field,)


def test_ids_and_names_at_their_limits_are_accepted() -> None:
    event = _event(userId="x" * 200, event="e" * 500, messageId="m-\u00e9\u4e2d")
    assert event.user_id == "x" * 200


def test_the_window_is_a_setting() -> None:
    bounds = Bounds(earliest_event_time=datetime(2020, 1, 1, tzinfo=UTC), max_future=timedelta(0))
    envelope = Envelope(received_at=RECEIVED, source="web", bounds=bounds)
    call = TypeAdapter(SINGLE_REQUESTS["track"]).validate_python(
        {"userId": "u", "event": "E", "timestamp": "2026-03-01T12:00:01Z"}
    )
    with pytest.raises(InvalidCallError):
        to_event(call, "track", envelope)
