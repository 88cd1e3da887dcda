"""Segment call -> shared Event: skew correction, server-owned fields, ids, required fields."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest.models import SINGLE_REQUESTS, SingleRequest
from ingest.normalise import Envelope, InvalidCallError, event_time, to_event
from pydantic import TypeAdapter

from shared.codec import decode, encode
from shared.events import Event, EventType

RECEIVED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ENVELOPE = Envelope(received_at=RECEIVED, source="web")


def call(call_type: EventType, **fields: object) -> SingleRequest:
    return TypeAdapter(SINGLE_REQUESTS[call_type]).validate_json(orjson.dumps(fields))


def normalised(call_type: EventType, *, envelope: Envelope = ENVELOPE, **fields: object) -> Event:
    return to_event(call(call_type, **fields), call_type, envelope)


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "expected"),
    [
        # The client clock is 10 minutes fast: the event happened 5 s before sending.
        ("2026-03-01T12:10:00Z", "2026-03-01T12:10:05Z", RECEIVED - timedelta(seconds=5)),
        # The client clock is an hour slow, in another zone.
        ("2026-03-01T12:59:00+02:00", "2026-03-01T13:00:00+02:00", RECEIVED - timedelta(minutes=1)),
        # No sentAt: the client time is taken as is.
        ("2025-12-31T23:00:00Z", None, datetime(2025, 12, 31, 23, tzinfo=UTC)),
        # No client time: the event happened when it was received.
        (None, "2026-03-01T11:00:00Z", RECEIVED),
        (None, None, RECEIVED),
        # No offset means UTC.
        ("2026-03-01T11:00:00", None, datetime(2026, 3, 1, 11, tzinfo=UTC)),
    ],
)
def test_event_time_is_corrected_for_client_clock_skew(
    timestamp: str | None, sent_at: str | None, expected: datetime
) -> None:
    event = normalised("track", userId="u", event="E", timestamp=timestamp, sentAt=sent_at)
    assert event.timestamp == expected
    assert event.received_at == RECEIVED


def test_original_timestamp_is_the_client_time_when_timestamp_is_missing() -> None:
    event = normalised(
        "track",
        userId="u",
        event="E",
        originalTimestamp="2026-03-01T12:00:30Z",
        sentAt="2026-03-01T12:00:40Z",
    )
    assert event.timestamp == RECEIVED - timedelta(seconds=10)
    assert event.original_timestamp == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    assert event.sent_at == datetime(2026, 3, 1, 12, 0, 40, tzinfo=UTC)


def test_the_batch_sent_at_applies_to_items_without_their_own() -> None:
    envelope = Envelope(RECEIVED, "web", sent_at=datetime(2026, 3, 1, 12, 0, 20, tzinfo=UTC))
    moment = "2026-03-01T12:00:00Z"
    event = normalised("track", envelope=envelope, userId="u", event="E", timestamp=moment)
    assert event.timestamp == RECEIVED - timedelta(seconds=20)
    own = normalised(
        "track",
        envelope=envelope,
        userId="u",
        event="E",
        timestamp="2026-03-01T12:00:00Z",
        sentAt="2026-03-01T12:00:01Z",
    )
    assert own.timestamp == RECEIVED - timedelta(seconds=1)


_YEAR_2000 = datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None)
_YEAR_2100 = datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None)


@given(
    client=st.datetimes(min_value=_YEAR_2000, max_value=_YEAR_2100),
    delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    received=st.datetimes(min_value=_YEAR_2000, max_value=_YEAR_2100),
)
def test_skew_correction_keeps_the_delay_the_client_saw(
    client: datetime, delay: timedelta, received: datetime
) -> None:
    client_time, received_at = client.replace(tzinfo=UTC), received.replace(tzinfo=UTC)
    corrected = event_time(client_time, client_time + delay, received_at)
    assert received_at - corrected == delay


def test_skew_beyond_the_calendar_is_refused_naming_the_time() -> None:
    with pytest.raises(InvalidCallError) as refused:
        normalised(
            "track",
            userId="u",
            event="E",
            timestamp="0001-01-01T00:00:00Z",
            sentAt="9999-12-31T00:00:00Z",
        )
    assert refused.value.field == "timestamp"
    assert "outside [1970-01-01, 2200-01-01)" in refused.value.reason


def test_server_owned_fields_sent_by_the_client_are_ignored() -> None:
    event = normalised(
        "track",
        userId="u",
        event="E",
        receivedAt="1999-01-01T00:00:00Z",
        source="forged",
        type="identify",
    )
    assert event.received_at == RECEIVED
    assert event.source == "web"
    assert event.type == "track"


def test_a_message_id_is_generated_when_missing_and_kept_when_given() -> None:
    first = normalised("track", userId="u", event="E")
    second = normalised("track", userId="u", event="E")
    assert uuid.UUID(first.message_id).version == 4
    assert first.message_id != second.message_id
    assert normalised("track", userId="u", event="E", messageId="m-7").message_id == "m-7"


@pytest.mark.parametrize("call_type", ["track", "identify", "page", "screen", "group"])
def test_user_id_or_anonymous_id_is_required(call_type: EventType) -> None:
    with pytest.raises(InvalidCallError) as refused:
        normalised(call_type, event="E", groupId="g")
    assert refused.value.field == "userId"
    assert "anonymousId" in refused.value.reason
    assert normalised(call_type, anonymousId="a", event="E", groupId="g").partition_key == "a"
    both = normalised(call_type, userId="u", anonymousId="a", event="E", groupId="g")
    assert both.partition_key == "u"


def test_alias_needs_only_previous_id_and_is_keyed_by_the_new_id() -> None:
    event = normalised("alias", previousId="anon-1", userId="u-1")
    assert (event.type, event.previous_id, event.partition_key) == ("alias", "anon-1", "u-1")
    assert normalised("alias", previousId="anon-1").partition_key == "anon-1"


def test_each_call_type_keeps_its_own_fields() -> None:
    track = normalised("track", userId="u", event="Order Completed", properties={"revenue": 9.5})
    assert (track.event, track.properties) == ("Order Completed", {"revenue": 9.5})
    identify = normalised("identify", userId="u", traits={"email": "a@example.com"})
    assert identify.traits == {"email": "a@example.com"}
    page = normalised("page", userId="u", name="Home", category="Docs", properties={"path": "/"})
    assert (page.name, page.category, page.properties) == ("Home", "Docs", {"path": "/"})
    group = normalised("group", userId="u", groupId="acme", traits={"plan": "pro"})
    assert (group.group_id, group.traits) == ("acme", {"plan": "pro"})


def test_numeric_ids_become_strings_as_segment_stores_them() -> None:
    assert normalised("track", userId=42, event="E").user_id == "42"


def test_batch_context_is_merged_under_the_call_context() -> None:
    envelope = Envelope(RECEIVED, "web", context={"ip": "10.0.0.1", "locale": "en"})
    event = normalised("track", envelope=envelope, userId="u", event="E", context={"locale": "zh"})
    assert event.context == {"ip": "10.0.0.1", "locale": "zh"}


def test_a_normalised_event_round_trips_through_the_shared_codec() -> None:
    event = normalised(
        "track",
        userId="u",
        event="E",
        properties={"nested": {"list": [1, None, "x"]}},
        context={"library": {"name": "analytics-python"}},
        timestamp="2026-03-01T11:59:00Z",
    )
    assert decode(Event, encode(event)) == event
