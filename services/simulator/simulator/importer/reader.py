"""Read CSV or JSONL into rows, each with the line number it starts on."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from simulator.importer.mapping import ColumnMapping, ImportRow, RowError, parse_row

FileFormat = Literal["csv", "jsonl"]
SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class InputError(ValueError):
    """The file as a whole cannot be imported (unknown format, a header without the columns)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedFile:
    rows: list[ImportRow]  # in event-time order (ties: file order)
    bad: list[BadRow]
    sha256: str


def detect_format(path: Path, explicit: str | None) -> FileFormat:
    if explicit in ("csv", "jsonl"):
        return explicit  # type: ignore[return-value]  # narrowed by the test above
    if explicit:
        raise InputError(f"--format {explicit!r}: expected csv or jsonl")
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"{path}: cannot tell the format from {path.suffix!r}; pass --format csv or jsonl"
        ) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_file(path: Path, mapping: ColumnMapping, file_format: FileFormat) -> ParsedFile:
    """Every row parsed; good rows sorted by event time, bad rows kept with their line numbers."""
    sha256 = file_sha256(path)
    id_prefix = f"import-{sha256[:16]}"
    rows: list[ImportRow] = []
    bad: list[BadRow] = []
    raw_rows = _csv_rows(path, mapping) if file_format == "csv" else _jsonl_rows(path)
    for line, raw in raw_rows:
        if isinstance(raw, RowError):
            bad.append(BadRow(line, str(raw)))
            continue
        try:
            rows.append(parse_row(raw, line=line, mapping=mapping, id_prefix=id_prefix))
        except RowError as exc:
            bad.append(BadRow(line, str(exc)))
    # Event-time order, ties in file order: the same file always sorts the same way,
    # which is what lets a checkpoint name a position in it.
    rows.sort(key=lambda row: (row.call.at, row.line))
    return ParsedFile(rows=rows, bad=bad, sha256=sha256)


RawRows = Iterator[tuple[int, dict[str, Any] | RowError]]


def _csv_rows(path: Path, mapping: ColumnMapping) -> RawRows:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        _check_header(path, header, mapping)
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, RowError(f"unreadable CSV: {exc}")
                continue
            if not any(value.strip() for value in values):
                continue  # a blank line
            if len(values) != len(header):
                yield start, RowError(f"has {len(values)} fields, the header has {len(header)}")
                continue
            yield start, dict(zip(header, values, strict=True))


def _check_header(path: Path, header: list[str], mapping: ColumnMapping) -> None:
    present = set(header)
    columns = mapping.columns
    missing = [columns["timestamp"]] if columns["timestamp"] not in present else []
    if columns["user_id"] not in present and columns["anonymous_id"] not in present:
        missing.append(f"{columns['user_id']} (or {columns['anonymous_id']})")
    if missing:
        raise InputError(
            f"{path}: the header {header} lacks {', '.join(missing)}; "
            "map your columns with --column FIELD=COLUMN"
        )


def _jsonl_rows(path: Path) -> RawRows:
    with path.open("rb") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield line, RowError(f"not valid JSON ({exc})")
                continue
            if not isinstance(value, dict):
                yield line, RowError(f"expected a JSON object, got {type(value).__name__}")
                continue
            yield line, value
