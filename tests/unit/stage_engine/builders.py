"""Small builders for lifecycle tests: events, runs, and a compact view of transitions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from stage_engine.lifecycle import LifecycleConfig, UserState, advance, expire
from stage_engine.lifecycle.emit import Emitted

from shared.events import Event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

_ids = count(1)


def event(
    kind: str,
    at: datetime,
    *,
    name: str | None = None,
    user_id: str | None = "u-1",
    anonymous_id: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> Event:
    """kind: track, page, screen, identify, group or alias; `name` is the track/page name."""
    fields: dict[str, Any] = {
        "message_id": message_id or f"m-{next(_ids)}",
        "type": kind,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": at,
        "received_at": at,
        "properties": properties or {},
        "traits": traits or {},
    }
    if kind == "track":
        fields["event"] = name
    elif name is not None:
        fields["name"] = name
    return Event.model_validate(fields)


def track(name: str, at: datetime, **kw: Any) -> Event:
    return event("track", at, name=name, **kw)


def order(value: float, at: datetime, **kw: Any) -> Event:
    return track("Order Completed", at, properties={"revenue": value}, **kw)


def page(at: datetime, **kw: Any) -> Event:
    return event("page", at, name="Home", **kw)


def brief(transition: Emitted) -> tuple[object, ...]:
    """(kind, from, to, reason, detail, time) — what a table row states."""
    data = transition.transition.data
    detail: object = data.milestone_days or data.purchase_level or data.flag
    from_stage = data.from_stage.value if data.from_stage is not None else None
    detail_value = getattr(detail, "value", detail)
    return (
        data.kind.value,
        from_stage,
        data.to_stage.value,
        data.reason,
        detail_value,
        transition.time,
    )


def run_events(
    events: Iterable[Event], config: LifecycleConfig, state: UserState | None = None
) -> tuple[UserState | None, list[Emitted]]:
    """advance() each event in the given order; no expire."""
    out: list[Emitted] = []
    for each in events:
        state, transitions = advance(state, each, config)
        out.extend(transitions)
    return state, out


def run_until(
    events: Iterable[Event], end: datetime, config: LifecycleConfig
) -> tuple[UserState, list[Emitted]]:
    """advance() each event, then one expire() at `end`."""
    state, out = run_events(events, config)
    assert state is not None
    state, transitions = expire(state, end, config)
    return state, [*out, *transitions]
