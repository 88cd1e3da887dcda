"""Which input column holds which field, and turning one input row into one call.

Fields (default column name = the field name):
  user_id       the user's id; required unless anonymous_id is given
  anonymous_id  optional: events of a visitor before they signed up
  event         the track event name (for page/screen rows: the page or screen name)
  timestamp     ISO 8601 (`2025-03-01T12:00:00Z`, a naive time is read in --timezone)
                or Unix epoch seconds (milliseconds when above 10^11)
  properties    a JSON object (a JSON text in CSV; an object or a JSON text in JSONL)
  type          optional: track (default), identify, page or screen; identify rows
                send their properties as traits
  message_id    optional: the event's id; otherwise one is derived from the file's
                content hash and the line number, so a resent row keeps its id

`--column FIELD=COLUMN` renames (e.g. `--column user_id=customer`), and
`--extra-as-properties` folds the columns no field uses into the properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from simulator.calls import Call, CallType

FIELDS = ("user_id", "anonymous_id", "event", "timestamp", "properties", "type", "message_id")
EPOCH_MILLIS_ABOVE = 10**11


class RowError(ValueError):
    """A row that cannot be sent; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    columns: Mapping[str, str] = field(default_factory=lambda: {name: name for name in FIELDS})
    extra_as_properties: bool = False
    timezone: str = "UTC"  # how naive timestamps are read

    @classmethod
    def from_options(
        cls, renames: list[str], *, extra_as_properties: bool = False, timezone: str = "UTC"
    ) -> ColumnMapping:
        """Build from `FIELD=COLUMN` strings; a bad one is refused naming it."""
        columns = {name: name for name in FIELDS}
        for rename in renames:
            name, sep, column = rename.partition("=")
            if not sep or not column.strip():
                raise ValueError(f"--column {rename!r}: expected FIELD=COLUMN, e.g. user_id=uid")
            if name.strip() not in FIELDS:
                raise ValueError(f"--column {rename!r}: unknown field {name!r}; fields: {FIELDS}")
            columns[name.strip()] = column.strip()
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"--timezone {timezone!r} is not a known IANA time zone") from None
        return cls(columns=columns, extra_as_properties=extra_as_properties, timezone=timezone)

    def describe(self) -> str:
        """Stable text of the mapping; the checkpoint stores it, so a changed mapping is noticed."""
        pairs = ",".join(f"{name}={self.columns[name]}" for name in FIELDS)
        return f"{pairs};extra={self.extra_as_properties};tz={self.timezone}"


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    call: Call


def parse_row(
    raw: Mapping[str, Any], *, line: int, mapping: ColumnMapping, id_prefix: str
) -> ImportRow:
    """One input row as a call, or RowError naming what is wrong."""
    columns = mapping.columns
    user_id = _text(raw, columns["user_id"])
    anonymous_id = _text(raw, columns["anonymous_id"])
    if not (user_id or anonymous_id):
        raise RowError(f"{columns['user_id']}: missing (a row needs a user id or an anonymous id)")
    call_type = (_text(raw, columns["type"]) or "track").lower()
    if call_type not in get_args(CallType):
        raise RowError(f"{columns['type']}: {call_type!r} is not one of {get_args(CallType)}")
    event = _text(raw, columns["event"])
    if call_type == "track" and not event:
        raise RowError(f"{columns['event']}: missing (a track row needs an event name)")
    timestamp = parse_timestamp(
        raw.get(columns["timestamp"]), mapping.timezone, columns["timestamp"]
    )
    properties = parse_properties(raw.get(columns["properties"]), columns["properties"])
    if mapping.extra_as_properties:
        used = set(columns.values())
        for key, value in raw.items():
            if key not in used and value not in (None, "") and key not in properties:
                properties[key] = value
    message_id = _text(raw, columns["message_id"]) or f"{id_prefix}-{line}"
    call = Call(
        call_type,  # type: ignore[arg-type]  # checked against CallType above
        timestamp,
        message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=event if call_type == "track" else None,
        name=event if call_type in ("page", "screen") else None,
        properties=properties if call_type != "identify" else {},
        traits=properties if call_type == "identify" else {},
    )
    return ImportRow(line=line, call=call)


def _text(raw: Mapping[str, Any], column: str) -> str | None:
    value = raw.get(column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(f"{column}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


def parse_timestamp(value: Any, timezone: str, column: str) -> datetime:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"{column}: missing")
    if isinstance(value, bool):
        raise RowError(f"{column}: {value!r} is not a time")
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None:
        seconds = number / 1000 if abs(number) > EPOCH_MILLIS_ABOVE else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise RowError(f"{column}: {value!r} is out of range as Unix epoch time") from None
    if not isinstance(value, str):
        raise RowError(
            f"{column}: expected ISO 8601 text or epoch seconds, got {type(value).__name__}"
        )
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(f"{column}: {value!r} is not ISO 8601 nor Unix epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


def parse_properties(value: Any, column: str) -> dict[str, Any]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RowError(f"{column}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RowError(f"{column}: expected a JSON object, got {type(value).__name__}")
    return value
