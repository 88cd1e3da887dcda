"""JSON log lines: whatever a caller puts in `extra` makes a line, never a logging error."""

from __future__ import annotations

import logging

import orjson

from shared.logs import JsonFormatter


def _line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("stage_engine.rebalance", logging.INFO, __file__, 1, "msg", (), None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = orjson.loads(JsonFormatter("stage-engine").format(record))
    return parsed


def test_a_mapping_with_integer_keys_is_logged_with_string_keys() -> None:
    line = _line(offsets={0: 17, 11: 4})
    assert line["offsets"] == {"0": 17, "11": 4}
    assert line["msg"] == "msg"
    assert line["service"] == "stage-engine"


class _Place:
    def __str__(self) -> str:
        return "here"


def test_values_json_cannot_hold_are_written_as_their_text() -> None:
    assert _line(place=_Place())["place"] == "here"
