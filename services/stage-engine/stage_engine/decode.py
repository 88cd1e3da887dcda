"""Polled records -> events in order, and poison messages kept apart (arroyo's habit).

A record that is not a valid Event (shared.codec.decode raises DecodeError), or that
names no user at all, is a poison message: it goes to the dead-letter topic and its
partition moves on. Anything else that goes wrong is a crash, not a poison message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.codec import decode
from shared.errors import DecodeError, UpstreamBrokenError
from shared.events import Event
from shared.kafka.dead_letter import DeadLetter


class TooManyPoisonMessagesError(UpstreamBrokenError):
    """More poison messages in a row than STAGE_MAX_CONSECUTIVE_POISON: upstream is broken.
    The poll loop waits with a backoff (shared/supervisor.py) and reads them again."""


@dataclass(frozen=True, slots=True)
class Located:
    """An event, where it was read from, and its record (for a dead letter)."""

    partition: int
    offset: int
    event: Event
    key: bytes | None = None
    value: bytes | None = None


@dataclass(slots=True)
class PartitionSpan:
    start: int  # the stored offset this batch starts from
    end: int  # the offset after the last record
    # The highest event time, each bounded by its received time plus the lateness: the
    # base of the event clock, which no event stamped in 2200 can then move ahead.
    max_event_time: datetime | None = None
    max_received_at: datetime | None = None  # the wall clock's bound while lagging


@dataclass(slots=True)
class DecodedBatch:
    events: list[Located] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    spans: dict[int, PartitionSpan] = field(default_factory=dict)
    stale: int = 0  # records before the stored offset (already applied), skipped
    poison_streak: int = 0  # poison messages in a row at the end of the batch

    @property
    def records(self) -> int:
        return len(self.events) + len(self.dead_letters)


def decode_batch(
    topic: str,
    records: Mapping[int, Sequence[Any]],
    positions: Mapping[int, int],
    *,
    poison_streak: int,
    max_consecutive_poison: int,
    lateness: timedelta,
) -> DecodedBatch:
    """Decode the records of owned partitions from their stored offsets on.

    `records` maps partition -> aiokafka ConsumerRecords in offset order; `positions`
    the stored offset of each owned partition. Records of partitions not owned (any
    more) are left out, and so are records before the stored offset (applied by a
    previous owner). Raises TooManyPoisonMessagesError before anything is written.
    """
    batch = DecodedBatch(poison_streak=poison_streak)
    for partition in sorted(records):
        start = positions.get(partition)
        if start is None:
            continue
        span = PartitionSpan(start=start, end=start)
        for record in records[partition]:
            if record.offset < start:
                batch.stale += 1
                continue
            span.end = record.offset + 1
            event, error = _event_or_error(record.value)
            if event is None:
                batch.poison_streak += 1
                if batch.poison_streak > max_consecutive_poison:
                    raise TooManyPoisonMessagesError(
                        f"{batch.poison_streak} poison messages in a row (limit "
                        f"STAGE_MAX_CONSECUTIVE_POISON={max_consecutive_poison}), the last at "
                        f"{topic}[{partition}]@{record.offset}: {error}"
                    )
                batch.dead_letters.append(
                    DeadLetter(topic, partition, record.offset, record.key, record.value, error)
                )
                continue
            batch.poison_streak = 0
            batch.events.append(Located(partition, record.offset, event, record.key, record.value))
            received_at = event.received_at
            clock_time = min(event.timestamp, received_at + lateness)
            if span.max_event_time is None or clock_time > span.max_event_time:
                span.max_event_time = clock_time
            if span.max_received_at is None or received_at > span.max_received_at:
                span.max_received_at = received_at
        if span.end > span.start:
            batch.spans[partition] = span
    return batch


def _event_or_error(value: bytes | None) -> tuple[Event | None, str]:
    try:
        event = decode(Event, value)
    except DecodeError as exc:
        return None, str(exc)
    if not (event.user_id or event.anonymous_id or event.previous_id):
        return None, "invalid Event: no user_id, anonymous_id or previous_id to route it by"
    return event, ""
