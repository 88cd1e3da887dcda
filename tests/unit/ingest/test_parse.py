"""Validation errors name the field and the reason; a batch reports invalid items by index."""

from __future__ import annotations

import orjson
import pytest
from ingest.models import SINGLE_REQUESTS
from ingest.parse import parse_batch, write_key_in
from ingest.refusals import RefusedError, field_of, reason_of
from pydantic import TypeAdapter, ValidationError

from shared.events import EventType


def single_error(call_type: EventType, body: bytes) -> tuple[str, str]:
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(SINGLE_REQUESTS[call_type]).validate_json(body)
    first = exc.value.errors(include_url=False)[0]
    return field_of(first), reason_of(first)


@pytest.mark.parametrize(
    ("call_type", "body", "field", "reason_part"),
    [
        ("track", b'{"userId": "u"}', "event", "required"),
        ("track", b'{"userId": "u", "event": ""}', "event", "at least 1 character"),
        ("track", b'{"userId": ["u"], "event": "E"}', "userId", "valid string"),
        ("track", b'{"userId": "u", "event": "E", "properties": 5}', "properties", "object"),
        (
            "track",
            b'{"userId": "u", "event": "E", "timestamp": "yesterday"}',
            "timestamp",
            "datetime",
        ),
        ("track", b'{"userId": "u", "event": "E", "sentAt": "2026-13-01"}', "sentAt", "datetime"),
        ("identify", b'{"userId": "u", "traits": []}', "traits", "object"),
        ("group", b'{"userId": "u"}', "groupId", "required"),
        ("alias", b'{"userId": "u"}', "previousId", "required"),
        ("track", b'{"userId": "u", "event": "E"', "body", "Invalid JSON"),
        ("track", b"[1, 2]", "body", "object"),
        ("page", b"", "body", "Invalid JSON"),
    ],
)
def test_single_call_errors_name_the_field(
    call_type: EventType, body: bytes, field: str, reason_part: str
) -> None:
    got_field, reason = single_error(call_type, body)
    assert got_field == field
    assert reason_part in reason


def test_a_valid_batch_keeps_every_call_in_order() -> None:
    parsed = parse_batch(
        orjson.dumps(
            {
                "writeKey": "k",
                "sentAt": "2026-03-01T12:00:00Z",
                "context": {"ip": "10.0.0.1"},
                "batch": [
                    {"type": "track", "userId": "u", "event": "E"},
                    {"type": "alias", "previousId": "a", "userId": "u"},
                ],
            }
        )
    )
    assert [(i, c.type) for i, c in parsed.calls] == [(0, "track"), (1, "alias")]
    assert (parsed.write_key, parsed.context, parsed.rejected) == ("k", {"ip": "10.0.0.1"}, [])
    assert parsed.sent_at is not None


def test_invalid_batch_items_are_reported_by_index_and_valid_ones_kept() -> None:
    parsed = parse_batch(
        orjson.dumps(
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "E"},
                    {"type": "track", "userId": "u"},
                    {"type": "nope"},
                    {"userId": "u"},
                    "not an object",
                    {"type": "identify", "userId": "u", "timestamp": "soon"},
                    {"type": "page", "anonymousId": "a"},
                ]
            }
        )
    )
    assert [i for i, _ in parsed.calls] == [0, 6]
    rejected = [(r.index, r.field) for r in parsed.rejected]
    assert rejected == [(1, "event"), (2, "type"), (3, "type"), (4, "item"), (5, "timestamp")]
    assert all(r.reason for r in parsed.rejected)
    assert parsed.size == 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"batch": []}', "batch"),
        (b'{"batch": {"type": "track"}}', "batch"),
        (b"{}", "batch"),
        (b'{"batch": [{"type": "track", "userId": "u", "event": "E"}], "sentAt": "x"}', "sentAt"),
        (b'{"batch": [], "context": 3}', "context"),
        (b"not json", "body"),
    ],
)
def test_a_bad_batch_envelope_refuses_the_whole_request_naming_the_field(
    body: bytes, field: str
) -> None:
    with pytest.raises(RefusedError) as refused:
        parse_batch(body)
    assert (refused.value.status, refused.value.field) == (400, field)


def test_the_write_key_is_read_from_an_invalid_body() -> None:
    assert write_key_in(b'{"writeKey": "k", "batch": 3}') == "k"
    assert write_key_in(b'{"writeKey": 3}') is None
    assert write_key_in(b"[]") is None
    assert write_key_in(b"{") is None
