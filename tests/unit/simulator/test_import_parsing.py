"""History import: parsing CSV and JSONL, the column mapping, bad rows by line, event-time order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from simulator.importer.mapping import ColumnMapping
from simulator.importer.reader import InputError, detect_format, parse_file

CSV_TEXT = """user_id,event,timestamp,properties
u1,Order Completed,2025-03-02T10:00:00Z,"{""revenue"": 12.5}"
u2,Signed Up,2025-03-01T09:00:00+01:00,
,Page Viewed,2025-03-01T10:00:00Z,
u3,Signed Up,yesterday,
u4,Signed Up,2025-03-01T11:00:00Z,{not json}
u5,Signed Up,2025-03-01T11:00:00Z,[1]
u6,"Multi
Line",1740826800,
u7,Signed Up
u8,Signed Up,1740826800000,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_are_parsed_sorted_by_event_time_and_bad_rows_named_by_line(
    tmp_path: Path,
) -> None:
    parsed = parse_file(write(tmp_path, "h.csv", CSV_TEXT), ColumnMapping(), "csv")

    bad = {row.line: row.reason for row in parsed.bad}
    assert set(bad) == {4, 5, 6, 7, 10}, bad
    assert "user_id" in bad[4]
    assert "missing" in bad[4]
    assert "timestamp" in bad[5]
    assert "yesterday" in bad[5]
    assert "properties" in bad[6]
    assert "JSON" in bad[6]
    assert "properties" in bad[7]
    assert "object" in bad[7]
    assert "2 fields" in bad[10]

    calls = [row.call for row in parsed.rows]
    assert [row.line for row in parsed.rows] == [3, 8, 11, 2]  # event time, ties in file order
    assert calls[0].at == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)  # +01:00 normalised to UTC
    assert calls[1].at == datetime(2025, 3, 1, 11, 0, tzinfo=UTC)  # epoch seconds
    assert calls[2].at == calls[1].at  # epoch milliseconds
    assert calls[1].event == "Multi\nLine"  # a quoted field over two lines starts on line 8
    assert calls[3].properties == {"revenue": 12.5}
    assert all(call.type == "track" for call in calls)


def test_message_ids_are_stable_per_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", CSV_TEXT)
    first = parse_file(path, ColumnMapping(), "csv")
    again = parse_file(path, ColumnMapping(), "csv")
    assert [r.call.message_id for r in first.rows] == [r.call.message_id for r in again.rows]
    assert len({r.call.message_id for r in first.rows}) == len(first.rows)
    other = parse_file(
        write(tmp_path, "other.csv", CSV_TEXT + "u9,X,2025-01-01T00:00:00Z,\n"),
        ColumnMapping(),
        "csv",
    )
    assert not {r.call.message_id for r in first.rows} & {r.call.message_id for r in other.rows}


def test_a_column_mapping_renames_fields_and_folds_extra_columns(tmp_path: Path) -> None:
    text = (
        "customer,action,when,plan,kind\n"
        "c1,Order Completed,2025-03-01 12:00,gold,track\n"
        "c2,,2025-03-01 13:00,free,identify\n"
    )
    mapping = ColumnMapping.from_options(
        ["user_id=customer", "event=action", "timestamp=when", "type=kind"],
        extra_as_properties=True,
        timezone="Asia/Shanghai",
    )
    parsed = parse_file(write(tmp_path, "m.csv", text), mapping, "csv")
    assert parsed.bad == []
    order, identify = (row.call for row in parsed.rows)
    assert order.user_id == "c1"
    assert order.event == "Order Completed"
    assert order.at == datetime(2025, 3, 1, 4, 0, tzinfo=UTC)  # naive, read in Asia/Shanghai
    assert order.properties == {"plan": "gold"}
    assert identify.type == "identify"
    assert identify.traits == {"plan": "free"}
    assert identify.properties == {}


def test_a_header_without_the_mapped_columns_is_refused_naming_them(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", "uid,name,ts\nu1,x,2025-01-01T00:00:00Z\n")
    with pytest.raises(InputError, match=r"lacks timestamp, user_id \(or anonymous_id\)"):
        parse_file(path, ColumnMapping(), "csv")


@pytest.mark.parametrize(
    ("renames", "message"),
    [(["user_id"], "FIELD=COLUMN"), (["colour=c"], "unknown field"), (["event="], "FIELD=COLUMN")],
)
def test_a_bad_mapping_option_is_refused_naming_it(renames: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnMapping.from_options(renames)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        ColumnMapping.from_options([], timezone="Mars/Olympus")


def test_jsonl_rows_bad_lines_and_object_properties(tmp_path: Path) -> None:
    text = "\n".join(
        [
            '{"user_id": "u1", "event": "Signed Up", "timestamp": "2025-03-01T00:00:00Z"}',
            "",
            "{broken",
            '["not", "an", "object"]',
            '{"anonymous_id": "a1", "event": "Home", "type": "page", "timestamp": 1740787200,'
            ' "properties": {"path": "/"}}',
            '{"user_id": "u2", "event": "Order Completed", "timestamp": "2025-03-02T00:00:00Z",'
            ' "properties": "{\\"revenue\\": 3}"}',
            '{"user_id": "u3", "timestamp": "2025-03-02T00:00:00Z"}',
            '{"user_id": 42, "event": "X", "timestamp": "2025-03-02T00:00:00Z", "type": "alias"}',
        ]
    )
    parsed = parse_file(write(tmp_path, "e.jsonl", text), ColumnMapping(), "jsonl")
    bad = {row.line: row.reason for row in parsed.bad}
    assert set(bad) == {3, 4, 7, 8}, bad
    assert "not valid JSON" in bad[3]
    assert "JSON object" in bad[4]
    assert "event" in bad[7]
    assert "alias" in bad[8]
    lines = [row.line for row in parsed.rows]
    assert lines == [1, 5, 6]
    page = parsed.rows[1].call
    assert (page.type, page.name, page.event, page.user_id) == ("page", "Home", None, None)
    assert parsed.rows[2].call.properties == {"revenue": 3}


def test_the_format_comes_from_the_suffix_or_the_option(tmp_path: Path) -> None:
    assert detect_format(tmp_path / "a.CSV", None) == "csv"
    assert detect_format(tmp_path / "a.ndjson", None) == "jsonl"
    assert detect_format(tmp_path / "a.txt", "jsonl") == "jsonl"
    with pytest.raises(InputError, match="--format"):
        detect_format(tmp_path / "a.txt", None)
