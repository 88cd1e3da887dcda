"""Polled records -> events in order, poison messages apart, stale records skipped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from stage_engine.decode import TooManyPoisonMessagesError, decode_batch

from shared.codec import encode
from tests.contracts import sample_event

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
LATENESS = timedelta(minutes=1)


@dataclass
class Record:
    offset: int
    value: bytes | None
    key: bytes | None = b"k"


def good(offset: int, minutes: int = 0, message_id: str | None = None) -> Record:
    at = T0 + timedelta(minutes=minutes)
    event = sample_event(message_id=message_id or f"m{offset}", timestamp=at, received_at=at)
    return Record(offset, encode(event))


def test_events_come_out_in_offset_order_with_each_partitions_span() -> None:
    batch = decode_batch(
        "events",
        {1: [good(10, 5), good(11, 2)], 0: [good(3, 1)]},
        {0: 3, 1: 10},
        poison_streak=0,
        max_consecutive_poison=10,
        lateness=LATENESS,
    )
    assert [(e.partition, e.offset) for e in batch.events] == [(0, 3), (1, 10), (1, 11)]
    assert (batch.spans[0].start, batch.spans[0].end) == (3, 4)
    assert (batch.spans[1].start, batch.spans[1].end) == (10, 12)
    assert batch.spans[1].max_event_time == T0 + timedelta(minutes=5)
    assert batch.dead_letters == []


def test_records_before_the_stored_offset_and_of_partitions_not_owned_are_skipped() -> None:
    batch = decode_batch(
        "events",
        {0: [good(1), good(2), good(3)], 2: [good(7)]},
        {0: 3},
        poison_streak=0,
        max_consecutive_poison=10,
        lateness=LATENESS,
    )
    assert [(e.partition, e.offset) for e in batch.events] == [(0, 3)]
    assert batch.stale == 2
    assert set(batch.spans) == {0}


def test_poison_messages_become_dead_letters_naming_the_problem() -> None:
    no_user = sample_event(user_id=None, anonymous_id=None)
    batch = decode_batch(
        "events",
        {0: [Record(0, b"{nope"), Record(1, None), good(2), Record(3, encode(no_user))]},
        {0: 0},
        poison_streak=0,
        max_consecutive_poison=10,
        lateness=LATENESS,
    )
    assert [e.offset for e in batch.events] == [2]
    errors = [letter.error for letter in batch.dead_letters]
    assert errors[0].startswith("invalid Event: not JSON")
    assert errors[1] == "invalid Event: empty message (null value)"
    assert "no user_id, anonymous_id or previous_id" in errors[2]
    assert [(d.topic, d.partition, d.offset) for d in batch.dead_letters] == [
        ("events", 0, 0),
        ("events", 0, 1),
        ("events", 0, 3),
    ]
    assert batch.spans[0].end == 4  # the partition moves past its poison messages
    assert batch.poison_streak == 1  # the last record was poison


def test_a_poison_streak_over_the_limit_stops_before_anything_is_written() -> None:
    records = {0: [Record(n, b"x") for n in range(3)]}
    batch = decode_batch(
        "events", records, {0: 0}, poison_streak=0, max_consecutive_poison=3, lateness=LATENESS
    )
    assert batch.poison_streak == 3
    with pytest.raises(TooManyPoisonMessagesError, match="4 poison messages in a row"):
        decode_batch(
            "events",
            {0: [Record(3, b"x")]},
            {0: 3},
            poison_streak=3,
            max_consecutive_poison=3,
            lateness=LATENESS,
        )


def test_a_good_event_resets_the_streak() -> None:
    batch = decode_batch(
        "events",
        {0: [Record(0, b"x"), good(1)]},
        {0: 0},
        poison_streak=5,
        max_consecutive_poison=10,
        lateness=LATENESS,
    )
    assert batch.poison_streak == 0


def test_an_event_stamped_far_ahead_moves_the_clock_only_to_its_received_time() -> None:
    hijack = sample_event(
        message_id="2200", timestamp=datetime(2200, 1, 1, tzinfo=UTC), received_at=T0
    )
    batch = decode_batch(
        "events",
        {0: [good(0, 5), Record(1, encode(hijack))]},
        {0: 0},
        poison_streak=0,
        max_consecutive_poison=10,
        lateness=LATENESS,
    )
    assert batch.spans[0].max_event_time == T0 + timedelta(minutes=5)  # not 2200
    assert batch.spans[0].max_received_at == T0 + timedelta(minutes=5)
    assert [e.event.message_id for e in batch.events] == ["m0", "2200"]  # still applied
