"""Hypothesis strategies for hostile but JSON-valid Segment calls (issue 14).

Each call is a JSON text, built by hand so that it can hold what Python's json module
will not write: number literals that overflow a double (1e400), integers beyond 64 bits,
very deep nesting. `message_id` is the messageId the call carries (always one: a
hostile one, or a unique plain one), so a test can follow every accepted call.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as it is (a number literal json.dumps cannot make)."""

    text: str


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


CALENDAR_EDGES = [
    "0001-01-01T00:00:00+05:00",  # converting to UTC underflows
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:00:00-05:00",  # converting to UTC overflows
    "9999-12-31T00:00:00Z",  # the next due date overflows
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59Z",
    "1999-12-31T23:59:59Z",
    "2000-01-01T00:00:00Z",
    "2024-02-29T12:00:00+14:00",
    "2200-01-01T00:00:00Z",
    "2026-12-05T12:00:00",  # no offset
    "not a date",
    "",
]

CONTROL = ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff"]

NUMBERS = [
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1.7e308"),
    Raw("-1.7e308"),
    Raw("18446744073709551616"),  # 2**64
    Raw("-9223372036854775809"),
    Raw("1e-400"),
    Raw("0"),
    Raw("-0.0"),
    Raw("12.5"),
]


def _ids() -> st.SearchStrategy[Any]:
    plain = st.text("abcdefghij0123456789-_", min_size=1, max_size=12)
    return st.one_of(
        plain,
        st.builds(lambda a, c, b: a + c + b, plain, st.sampled_from(CONTROL), plain),
        st.sampled_from(["x" * 199, "x" * 200, "x" * 201, "x" * 10_000, " ", ""]),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([None, True, [], {}, 1.5]),
    )


def _message_ids() -> st.SearchStrategy[Any]:
    """Strings and numbers only: an accepted call's messageId is then known to the test."""
    tail = st.text("abcdefghij0123456789", min_size=1, max_size=8)
    return st.one_of(
        st.builds(lambda c, t: f"m{c}{t}", st.sampled_from(CONTROL), tail),
        st.builds(lambda n, t: n + t, st.sampled_from(["m" * 199, "m" * 200, "m" * 300]), tail),
        st.integers(min_value=10**12, max_value=2**70),
    )


def _names() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["Order Completed", "Signed Up", "Viewed Product", "Complaint Filed"]),
        st.builds(lambda c: f"Order{c}Completed", st.sampled_from(CONTROL)),
        st.sampled_from(["e" * 500, "e" * 501, "", 7, None, ["Order Completed"]]),
    )


def _nested(depth: int) -> Raw:
    """An object `depth` levels deep, as text (to_json would recurse as deep)."""
    return Raw('{"n":' * depth + '{"leaf":1}' + "}" * depth)


def _properties() -> st.SearchStrategy[Any]:
    amount = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(["12.5", "1e400", "NaN", None]))
    return st.one_of(
        st.fixed_dictionaries({"revenue": amount}, optional={"quantity": amount}),
        st.fixed_dictionaries({"total": amount, "currency": st.sampled_from(["CNY", "\x00"])}),
        st.sampled_from([10, 100, 600]).map(_nested),
        st.sampled_from(["a string", 3, [1, 2], None]),
        st.just({"long": "y" * 100_000}),
    )


def _traits() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {"email": st.sampled_from(["ann@example.com", "a\x00@x.io", "m" * 5000])},
            optional={"phone": st.sampled_from(["+8613800000000", 8613800000000])},
        ),
        st.sampled_from([[], "x", 5]),
    )


_serial = itertools.count()
MUTATIONS = (
    "messageId",
    "userId",
    "anonymousId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "name",
    "properties",
    "traits",
    "context",
    "otherId",
)


def _ordinary(call_type: str, serial: int) -> dict[str, Any]:
    """A call ingest and the engine accept: the base each hostile call changes."""
    call: dict[str, Any] = {
        "type": call_type,
        "messageId": f"plain-{serial}",
        "userId": f"user-{serial % 40}",
        "timestamp": "2026-11-30T10:00:00Z",
    }
    if call_type == "track":
        call |= {"event": "Order Completed", "properties": {"revenue": 12.5}}
    elif call_type in ("page", "screen"):
        call |= {"name": "Home", "properties": {}}
    elif call_type in ("identify", "group"):
        call["traits"] = {"email": "ann@example.com"}
        if call_type == "group":
            call["groupId"] = "g-1"
    else:
        call["previousId"] = f"anon-{serial}"
    return call


@st.composite
def hostile_call(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(call type, call): an ordinary call with one to three fields made hostile."""
    call_type = draw(st.sampled_from(CALL_TYPES))
    call = _ordinary(call_type, next(_serial))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if mutation == "messageId":
            call["messageId"] = draw(_message_ids())
        elif mutation in ("userId", "anonymousId"):
            call[mutation] = draw(_ids())
        elif mutation in ("timestamp", "sentAt", "originalTimestamp"):
            call[mutation] = draw(st.one_of(st.sampled_from(CALENDAR_EDGES), st.integers()))
        elif mutation == "name" and call_type in ("track", "page", "screen"):
            call["event" if call_type == "track" else "name"] = draw(_names())
        elif mutation == "properties" and "properties" in call:
            call["properties"] = draw(_properties())
        elif mutation == "traits" and "traits" in call:
            call["traits"] = draw(_traits())
        elif mutation == "context":
            call["context"] = draw(st.sampled_from([_nested(40), {"ip": "\x00"}, "ctx", None]))
        elif mutation == "otherId" and call_type in ("group", "alias"):
            call["groupId" if call_type == "group" else "previousId"] = draw(_ids())
    return call_type, call
