"""The fast record encoding writes exactly what shared.codec.encode writes for the Event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.models import ITEM_ADAPTER
from ingest.normalise import Envelope, InvalidCallError, to_event
from ingest.record import to_record

from shared.codec import decode, encode
from shared.events import Event

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Ids and names without control characters (ingest refuses those: test_bounds.py).
printable = st.characters(blacklist_categories=("Cc", "Cs"))
ids = st.one_of(
    st.none(), st.text(printable, min_size=1, max_size=20), st.integers(-(10**6), 10**6)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
objects = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values, max_size=4))
offsets = st.sampled_from(["Z", "+00:00", "+08:00", "-05:30", ""])
moments = st.one_of(
    st.none(),
    st.builds(
        lambda moment, offset: moment.isoformat() + offset,
        st.datetimes(
            min_value=datetime(1990, 1, 1, tzinfo=UTC).replace(tzinfo=None),
            max_value=datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        ),
        offsets,
    ),
)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    call_type = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    call: dict[str, Any] = {
        "type": call_type,
        "userId": draw(ids),
        "anonymousId": draw(ids),
        # Always given: a generated id would differ between the two encodings.
        "messageId": draw(st.text(printable, min_size=1, max_size=30)),
        "timestamp": draw(moments),
        "originalTimestamp": draw(moments),
        "sentAt": draw(moments),
        "context": draw(objects),
        "properties": draw(objects),
        "traits": draw(objects),
        "name": draw(st.one_of(st.none(), st.text(printable, min_size=1, max_size=10))),
        "category": draw(st.one_of(st.none(), st.text(printable, min_size=1, max_size=10))),
    }
    if call["userId"] is None and call["anonymousId"] is None and call_type != "alias":
        call["anonymousId"] = "anon"
    call |= {"track": {"event": "E"}, "group": {"groupId": "g"}, "alias": {"previousId": "p"}}.get(
        call_type, {}
    )
    return call


@settings(max_examples=300, deadline=None)
@given(
    raw=calls(),
    batch_context=objects,
    received_offset=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
)
def test_the_record_is_the_shared_encoding_of_the_event(
    raw: dict[str, Any], batch_context: dict[str, Any] | None, received_offset: timezone
) -> None:
    call = ITEM_ADAPTER.validate_json(orjson.dumps(raw))
    envelope = Envelope(RECEIVED.astimezone(received_offset), "web", context=batch_context)
    try:
        event = to_event(call, call.type, envelope)
    except InvalidCallError:
        with pytest.raises(InvalidCallError):
            to_record(call, call.type, envelope)
        return
    key, value = to_record(call, call.type, envelope)
    assert value == encode(event)
    # encode() writes through pydantic-core; it must keep the bytes orjson gave.
    assert value == orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    assert key == event.partition_key.encode()
    assert decode(Event, value) == event


def test_an_integer_beyond_64_bits_is_refused_naming_the_body() -> None:
    call = ITEM_ADAPTER.validate_json(
        b'{"type": "track", "userId": "u", "event": "E", "properties": {"n": 18446744073709551616}}'
    )
    with pytest.raises(InvalidCallError) as refused:
        to_record(call, "track", Envelope(RECEIVED, "web"))
    assert refused.value.field == "body"
    assert "64-bit" in refused.value.reason
