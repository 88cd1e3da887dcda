"""The notifier's policy clock: wall time, or the newest transition time seen.

Policy decisions (quiet hours, caps, coupon expiry, the due time of a deferred
message) use this clock. Leases and retry backoff always use wall time: they
guard against crashes and slow providers, which happen in real time even when
a simulation moves 60 days a minute.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.clock import Clock, SystemClock


class EventClock:
    """`now` is the newest transition time observed (NOTIFIER_CLOCK=event)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"EventClock needs an aware datetime, got {start!r}")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def observe(self, moment: datetime) -> None:
        # Event time never runs backwards: a late transition does not rewind policy time.
        self._now = max(self._now, moment)


def observe(clock: Clock, moment: datetime) -> None:
    """Tell the clock a transition happened at `moment` (only an EventClock cares)."""
    if isinstance(clock, EventClock):
        clock.observe(moment)


def make_clock(kind: str, *, newest_seen: datetime | None) -> Clock:
    if kind == "wall":
        return SystemClock()
    if kind == "event":
        # Restarted in event mode, carry on from the newest transition already planned.
        return EventClock(newest_seen or datetime(1970, 1, 1, tzinfo=UTC))
    raise ValueError(f"NOTIFIER_CLOCK={kind!r}: expected 'wall' or 'event'")
