"""UserState's stored form: JSON-safe, versioned, and refused clearly when unreadable."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import orjson
import pytest
from stage_engine.lifecycle import LifecycleConfig, UserState, stored
from stage_engine.lifecycle.state import Draft, StateFormatError

from tests.unit.stage_engine.builders import DAY, T0, event, order, page, run_events, track


def _rich_state() -> UserState:
    state, _ = run_events(
        [
            page(T0),
            event("identify", T0, traits={"email": "b@example.com", "sms_opt_out": True}),
            order(30.0, T0 + DAY),
            track("Complaint Filed", T0 + 2 * DAY),
        ],
        LifecycleConfig(),
    )
    assert state is not None
    return state


def test_the_dict_is_json_through_orjson_and_reads_back_equal() -> None:
    state = _rich_state()
    text = orjson.dumps(state.to_dict())
    stored = json.loads(text)  # plain JSON: any JSON reader can read the stored form
    assert stored["stage_since"] == "2026-03-02T09:00:00+00:00"
    back = UserState.from_dict(stored)
    assert back == state
    assert back.risk_flags == ("negative_feedback",)
    assert back.traits == {"email": "b@example.com", "sms_opt_out": True}


def test_draft_and_state_have_the_same_fields_in_the_same_order() -> None:
    assert [f.name for f in fields(Draft)] == list(UserState._fields)
    state = _rich_state()
    assert state.thaw().freeze() == state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 99}, "'v'=99: expected 1"),
        ({"stage": "asleep"}, "'stage'='asleep' is not one of"),
        ({"stage_since": "2026-03-02T09:00:00"}, "has no UTC offset"),
        ({"stage_since": "2026-03-02T09:00:00+08:00"}, "is not in UTC"),
    ],
)
def test_an_unreadable_state_names_what_is_wrong(change: dict[str, Any], message: str) -> None:
    data = {**orjson.loads(orjson.dumps(_rich_state().to_dict())), **change}
    with pytest.raises(StateFormatError, match=message):
        UserState.from_dict(data)


def test_a_missing_field_is_named() -> None:
    data = _rich_state().to_dict()
    del data["orders"]
    with pytest.raises(StateFormatError, match="'orders' is missing"):
        UserState.from_dict(data)


def test_the_row_is_a_json_array_and_reads_back_equal() -> None:
    state = _rich_state()
    text = orjson.dumps(stored.to_row(state))
    row = json.loads(text)  # plain JSON: any JSON reader can read the stored form
    assert row[0] == stored.ROW_FORMAT
    assert row[1] == state.user_id
    assert len(text) < 0.7 * len(orjson.dumps(state.to_dict()))
    back = stored.decode(row)
    assert back == state
    assert back.traits == {"email": "b@example.com", "sms_opt_out": True}


def test_rows_stored_as_format_1_objects_still_read() -> None:
    state = _rich_state()
    assert stored.decode(orjson.loads(orjson.dumps(state.to_dict()))) == state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({0: 99}, r"format \[99\]: expected \[2, ...\]"),
        ({3: "asleep"}, "'stage'='asleep' is not one of"),
        ({4: "2026-03-02T09:00:00+08:00"}, "is not in UTC"),
        ({5: "2026-03-02T09:00:00"}, "has no UTC offset"),
        ({4: None}, "is unreadable"),  # stage_since is required
        ({10: None, 11: "many"}, "is unreadable"),
    ],
)
def test_an_unreadable_row_names_what_is_wrong(change: dict[int, Any], message: str) -> None:
    row = orjson.loads(orjson.dumps(stored.to_row(_rich_state())))
    for index, value in change.items():
        row[index] = value
    with pytest.raises(StateFormatError, match=message):
        stored.decode(row)


def test_a_row_of_the_wrong_length_or_type_is_refused() -> None:
    row = orjson.loads(orjson.dumps(stored.to_row(_rich_state())))
    with pytest.raises(StateFormatError, match="has 22 items: expected 23"):
        stored.decode(row[:-1])
    with pytest.raises(StateFormatError, match="is a str: expected array or object"):
        stored.decode("state")
