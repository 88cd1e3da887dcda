from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.events import Event, partition_key
from shared.notifications import NotificationOutcome
from shared.schemas import DEFAULT_DIR, stale_files
from shared.transitions import Transition, TransitionKind, _isoformat, transition_id
from tests.contracts import T0, sample_event, sample_outcome, sample_transition


@pytest.mark.parametrize(
    ("model", "record"),
    [
        (Event, sample_event()),
        (Transition, sample_transition()),
        (NotificationOutcome, sample_outcome()),
    ],
)
def test_each_contract_round_trips_through_the_codec(
    model: type[BaseModel], record: BaseModel
) -> None:
    assert decode(model, encode(record)) == record


def test_bytes_that_are_not_json_raise_decode_error() -> None:
    with pytest.raises(DecodeError, match="not JSON") as caught:
        decode(Event, b"{not json")
    assert caught.value.field == ""


def test_a_bad_field_is_named_in_the_decode_error() -> None:
    payload = encode(sample_event()).replace(b'"2026-01-05T09:30:00Z"', b'"yesterday"', 1)
    with pytest.raises(DecodeError) as caught:
        decode(Event, payload)
    assert caught.value.field == "timestamp"
    assert "timestamp" in str(caught.value)


def test_a_nested_bad_field_is_named_by_its_path() -> None:
    payload = encode(sample_transition()).replace(b'"to_stage":"silent"', b'"to_stage":"asleep"')
    with pytest.raises(DecodeError) as caught:
        decode(Transition, payload)
    assert caught.value.field == "data.to_stage"


def test_null_value_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="null"):
        decode(Event, None)


def test_transition_ids_are_deterministic_and_distinguish_inputs() -> None:
    first = transition_id("u-1", TransitionKind.STAGE_CHANGED, T0, "silent")
    assert first == transition_id("u-1", TransitionKind.STAGE_CHANGED, T0, "silent")
    assert first != transition_id("u-1", TransitionKind.STAGE_CHANGED, T0, "churned")
    assert first != transition_id("u-2", TransitionKind.STAGE_CHANGED, T0, "silent")
    assert sample_transition().id == sample_transition().id


@pytest.mark.parametrize("user_id", ["u-1", "anon-ü-✓", "x" * 200, ""])
def test_transition_ids_are_the_standard_uuid5_of_their_name(user_id: str) -> None:
    """The hand-written uuid5 gives what uuid.uuid5 gives: ids published before it stay."""
    namespace = uuid.UUID("6f1c1d1e-8a53-4b7e-9a55-3c8a3c1f0b7d")
    for kind in TransitionKind:
        for n in range(20):
            at = T0 + timedelta(days=n, microseconds=n * 7)
            name = "|".join((user_id, kind.value, at.isoformat(), f"milestone:{n}"))
            got = transition_id(user_id, kind, at, f"milestone:{n}")
            assert got == str(uuid.uuid5(namespace, name))


_OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=9, minutes=30))]
)


@given(moment=st.datetimes(timezones=_OFFSETS) | st.datetimes())
def test_the_id_text_of_a_moment_is_its_isoformat(moment: datetime) -> None:
    """Ids hash the moment's isoformat(); the faster writer must give the same text, with
    and without microseconds, offsets or a timezone (ids published before it stay)."""
    assert _isoformat(moment) == moment.isoformat()


def test_transition_is_a_cloudevents_envelope() -> None:
    wire = sample_transition().model_dump(mode="json")
    assert wire["specversion"] == "1.0"
    assert wire["type"] == "lifecycle.stage_changed.v1"
    assert wire["subject"] == "u-1"
    assert wire["time"] == "2026-01-05T09:30:00Z"


def test_partition_key_prefers_user_id_then_anonymous_id() -> None:
    assert partition_key("u", "a") == "u"
    assert partition_key(None, "a") == "a"
    with pytest.raises(ValueError, match="user_id or anonymous_id"):
        partition_key(None, None)


def test_checked_in_schema_files_are_fresh() -> None:
    assert stale_files(DEFAULT_DIR) == [], "run `make schemas` and commit docs/schemas/"
