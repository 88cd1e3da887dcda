"""Bytes -> validated Segment calls, in one pass of pydantic's JSON validation.

A valid batch is validated whole, straight from the bytes (the fast path).
When some items are invalid, the batch is read again item by item so that
each invalid item is reported by its index and the valid ones still go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from ingest.models import (
    ITEM_ADAPTER,
    AliasItem,
    BatchRequest,
    GroupItem,
    IdentifyItem,
    LooseBatchRequest,
    PageItem,
    Rejection,
    ScreenItem,
    TrackItem,
)
from ingest.refusals import bad_request, field_of, reason_of

Item = TrackItem | IdentifyItem | PageItem | ScreenItem | GroupItem | AliasItem

_BATCH: TypeAdapter[BatchRequest] = TypeAdapter(BatchRequest)
_LOOSE_BATCH: TypeAdapter[LooseBatchRequest] = TypeAdapter(LooseBatchRequest)


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    calls: list[tuple[int, Item]]
    rejected: list[Rejection]
    write_key: str | None
    sent_at: datetime | None
    context: dict[str, Any] | None

    @property
    def size(self) -> int:
        return len(self.calls) + len(self.rejected)


def parse_batch(body: bytes) -> ParsedBatch:
    """The batch's valid calls with their indexes, and a rejection per invalid one.

    Raises RefusedError (400) when the request itself is bad: not JSON, no `batch` list,
    a bad `sentAt` or `context` at the top level.
    """
    try:
        request = _BATCH.validate_json(body)
    except ValidationError as exc:
        return _item_by_item(body, exc.errors(include_url=False))
    return ParsedBatch(
        calls=list(enumerate(request.batch)),
        rejected=[],
        write_key=request.write_key,
        sent_at=request.sent_at,
        context=request.context,
    )


def _item_by_item(body: bytes, errors: list[ErrorDetails]) -> ParsedBatch:
    for error in errors:
        loc = error["loc"]
        if not (len(loc) >= 2 and loc[0] == "batch" and isinstance(loc[1], int)):
            raise bad_request(field_of(error), reason_of(error))
    # Only items were wrong, so the envelope alone validates.
    envelope = _LOOSE_BATCH.validate_json(body)
    calls: list[tuple[int, Item]] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(envelope.batch):
        try:
            calls.append((index, ITEM_ADAPTER.validate_python(raw)))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = field_of(first, tagged=True, whole="item")
            rejected.append(Rejection(index=index, field=field, reason=reason_of(first)))
    return ParsedBatch(
        calls=calls,
        rejected=rejected,
        write_key=envelope.write_key,
        sent_at=envelope.sent_at,
        context=envelope.context,
    )


def write_key_in(body: bytes) -> str | None:
    """The body's `writeKey`, read from a body that failed validation (slow path only)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = document.get("writeKey") if isinstance(document, dict) else None
    return key if isinstance(key, str) else None
