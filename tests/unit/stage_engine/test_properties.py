"""Properties of the pure rules over generated journeys (hypothesis, bounded runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from stage_engine.lifecycle import (
    LifecycleConfig,
    UserState,
    advance,
    expire,
    merge_anonymous,
    stored,
)
from stage_engine.lifecycle.emit import Emitted

from shared.events import Event
from shared.transitions import Stage, TransitionKind
from tests.unit.stage_engine.builders import DAY, T0, event, order, page, track

BOUNDED = settings(max_examples=200, deadline=None)

KINDS = ("page", "screen", "viewed", "order", "signup", "identify", "complaint", "excluded")


@dataclass(frozen=True)
class Journey:
    config: LifecycleConfig
    events: tuple[Event, ...]  # in event-time order
    end: datetime  # the final expire
    probes: tuple[tuple[float, ...], ...]  # per event: where wall-time expire() calls fall


@st.composite
def configs(draw: st.DrawFn) -> LifecycleConfig:
    silent = draw(st.integers(1, 10))
    milestones = draw(st.lists(st.integers(1, 70), max_size=5, unique=True))
    return LifecycleConfig(
        onboarding_days=draw(st.integers(0, 10)),
        silent_after_days=silent,
        churn_after_days=silent + draw(st.integers(1, 30)),
        milestone_days=tuple(sorted(milestones)),
        loyal_order_count=draw(st.integers(3, 6)),
        activity_window_days=draw(st.integers(1, 28)),
        activity_drop_min_baseline=draw(st.integers(1, 4)),
        negative_feedback_window_days=draw(st.integers(1, 30)),
        activity_excluded_events=("Email Opened",),
    )


def _make(kind: str, at: datetime, anonymous: bool, value: float) -> Event:
    ids = {"user_id": None, "anonymous_id": "a-1"} if anonymous else {"user_id": "u-1"}
    if kind == "page":
        return page(at, **ids)
    if kind == "screen":
        return event("screen", at, name="Cart", **ids)
    if kind == "order":
        return order(value, at, **ids)
    if kind == "signup":
        return track("Signed Up", at, **ids)
    if kind == "identify":
        return event("identify", at, traits={"email": f"{value}@example.com"}, **ids)
    if kind == "complaint":
        return track("Complaint Filed", at, **ids)
    if kind == "excluded":
        return track("Email Opened", at, **ids)
    return track("Product Viewed", at, **ids)


# One draw per event (cheap to generate): minutes since the previous event
# (mostly under 3 hours, else up to 45 days), what happens, and up to two
# wall-time probes as thousandths of the gap to the next event.
_STEPS = st.tuples(
    st.integers(0, 1_180).map(lambda n: n if n < 180 else (n - 180) * 65),
    st.sampled_from([(kind, value) for kind in KINDS for value in (5.0, 20.0, 50.0, 120.0)]),
    st.lists(st.integers(0, 999), max_size=2),
)


@st.composite
def journeys(
    draw: st.DrawFn, anonymous: bool | None = None, config: LifecycleConfig | None = None
) -> Journey:
    """One profile key's events; `anonymous` and `config` drawn unless given."""
    config = config or draw(configs())
    anonymous = draw(st.booleans()) if anonymous is None else anonymous
    moment = T0
    events: list[Event] = []
    probes: list[tuple[float, ...]] = []
    for gap_minutes, (kind, value), thousandths in draw(st.lists(_STEPS, min_size=1, max_size=20)):
        moment += timedelta(minutes=gap_minutes)
        events.append(_make(kind, moment, anonymous, value))
        probes.append(tuple(sorted(n / 1000 for n in thousandths)))
    end = moment + draw(st.integers(0, 120)) * DAY
    return Journey(config, tuple(events), end, tuple(probes))


def in_event_time(journey: Journey) -> tuple[UserState, list[Emitted]]:
    """advance() only (timers fired by later events), then one final expire()."""
    state: UserState | None = None
    out: list[Emitted] = []
    for each in journey.events:
        state, transitions = advance(state, each, journey.config)
        out.extend(transitions)
    assert state is not None
    state, transitions = expire(state, journey.end, journey.config)
    return state, [*out, *transitions]


def living_through(journey: Journey) -> tuple[UserState, list[Emitted]]:
    """advance() each event as it arrives and expire() at wall times in between.

    Checks on the way that nothing fires after the moment it was asked about.
    """
    state: UserState | None = None
    out: list[Emitted] = []
    events = journey.events
    config = journey.config
    for index, each in enumerate(events):
        state, transitions = advance(state, each, config)
        assert all(t.time <= each.timestamp for t in transitions)
        out.extend(transitions)
        following = events[index + 1].timestamp if index + 1 < len(events) else journey.end
        gap = following - each.timestamp
        for fraction in journey.probes[index]:
            now = each.timestamp + timedelta(
                microseconds=int(gap / timedelta(microseconds=1) * fraction)
            )
            if now >= following:
                continue  # a wall time must come before the next event's time
            state, transitions = expire(state, now, config)
            assert all(t.time <= now for t in transitions)
            assert state.next_due_at is None or state.next_due_at > now
            out.extend(transitions)
    assert state is not None
    state, transitions = expire(state, journey.end, config)
    assert all(t.time <= journey.end for t in transitions)
    return state, [*out, *transitions]


def _stage_changes(transitions: list[Emitted]) -> list[Emitted]:
    return [t for t in transitions if t.kind is TransitionKind.STAGE_CHANGED]


@BOUNDED
@given(journeys())
def test_same_events_in_the_same_order_give_the_same_transitions(journey: Journey) -> None:
    first_state, first = in_event_time(journey)
    second_state, second = in_event_time(journey)
    assert first == second
    assert first_state == second_state
    assert len({t.id for t in first}) == len(first)  # ids are unique within a history


@BOUNDED
@given(journeys())
def test_each_stage_change_starts_where_the_previous_one_ended(journey: Journey) -> None:
    state, transitions = living_through(journey)
    previous: Stage | None = None
    previous_time: datetime | None = None
    for change in _stage_changes(transitions):
        assert change.transition.data.from_stage == previous
        assert change.transition.data.from_stage != change.to_stage
        assert previous_time is None or change.time >= previous_time
        previous, previous_time = change.to_stage, change.time
    assert state.stage == previous
    assert state.stage_since == previous_time


@BOUNDED
@given(journeys())
def test_processing_in_event_time_equals_living_through_it(journey: Journey) -> None:
    assert in_event_time(journey) == living_through(journey)


@BOUNDED
@given(journeys())
def test_no_timer_fires_before_its_condition_held(journey: Journey) -> None:
    config = journey.config
    _, transitions = living_through(journey)
    for transition in transitions:
        data, at = transition.transition.data, transition.time
        profile = data.profile
        idle_since = profile.last_active_at or profile.signed_up_at or profile.first_seen_at
        if data.kind is TransitionKind.INACTIVITY_MILESTONE:
            assert data.milestone_days is not None
            assert at == idle_since + data.milestone_days * DAY
        elif data.reason == "inactivity":
            assert at >= idle_since + config.silent_after_days * DAY
        elif data.reason == "churn":
            assert at >= idle_since + config.churn_after_days * DAY
        elif data.reason == "onboarding_complete":
            assert profile.signed_up_at is not None
            assert at == profile.signed_up_at + config.onboarding_days * DAY
            assert at < idle_since + config.silent_after_days * DAY


@st.composite
def late_arrivals(draw: st.DrawFn) -> tuple[Journey, list[int]]:
    journey = draw(journeys())
    return journey, draw(st.permutations(range(len(journey.events))))


@BOUNDED
@given(late_arrivals())
def test_late_events_update_counters_and_never_reverse_a_past_transition(
    case: tuple[Journey, list[int]],
) -> None:
    journey, order_of_arrival = case
    config = journey.config
    state: UserState | None = None
    changes: list[Emitted] = []
    wall = journey.events[0].timestamp
    for index in order_of_arrival:
        each = journey.events[index]
        wall = max(wall, each.timestamp)  # the wall clock never goes back
        if state is not None:
            state, fired = expire(state, wall, config)
            changes.extend(_stage_changes(list(fired)))
        before = state
        state, transitions = advance(state, each, config)
        stage_changes = _stage_changes(list(transitions))
        if before is not None and each.timestamp < before.stage_since:
            # Too late to move the stage, but a prospect's late signup still signs up.
            for change in stage_changes:
                assert (change.transition.data.from_stage, change.to_stage) == (
                    Stage.PROSPECT,
                    Stage.NEW,
                )
                assert change.time == before.stage_since
            if not stage_changes:
                assert (state.stage, state.stage_since) == (before.stage, before.stage_since)
        changes.extend(stage_changes)
    assert state is not None
    previous: Stage | None = None
    previous_time: datetime | None = None
    for change in changes:
        assert change.transition.data.from_stage == previous
        assert previous_time is None or change.time >= previous_time
        previous, previous_time = change.to_stage, change.time
    orders = [e for e in journey.events if e.event == "Order Completed"]
    assert state.orders == len(orders)
    assert abs(state.revenue - sum(e.properties["revenue"] for e in orders)) < 1e-6
    assert state.first_seen_at == journey.events[0].timestamp
    assert state.last_event_at == journey.events[-1].timestamp


@BOUNDED
@given(journeys())
def test_state_round_trips_through_dict_and_json_and_stays_bounded(journey: Journey) -> None:
    state: UserState | None = None
    config = journey.config
    for each in journey.events:
        state, _ = advance(state, each, config)
        assert state is not None
        as_dict = state.to_dict()
        assert UserState.from_dict(as_dict) == state
        through_json = UserState.from_dict(orjson.loads(orjson.dumps(as_dict)))
        assert through_json == state
        assert through_json.to_dict() == as_dict
        assert stored.decode(orjson.loads(orjson.dumps(stored.to_row(state)))) == state
        assert len(state.activity_counts) <= 2 * config.activity_window_days
        assert state.milestone_reached_days in (0, *config.milestone_days)
        assert set(state.risk_flags) <= {"activity_drop", "order_value_drop", "negative_feedback"}


@st.composite
def merges(draw: st.DrawFn) -> tuple[Journey, Journey, int]:
    """A user's journey and an anonymous one (same config), merged after event `at_index`."""
    user = draw(journeys(anonymous=False))
    anonymous = draw(journeys(anonymous=True, config=user.config))
    return user, anonymous, draw(st.integers(0, len(user.events) - 1))


@BOUNDED
@given(merges())
def test_a_merge_keeps_the_users_stage_chain_and_adds_up_the_counters(
    case: tuple[Journey, Journey, int],
) -> None:
    user_journey, anonymous_journey, at_index = case
    config = user_journey.config
    anonymous, _ = in_event_time(anonymous_journey)
    state: UserState | None = None
    changes: list[Emitted] = []
    for index, each in enumerate(user_journey.events):
        state, transitions = advance(state, each, config)
        changes.extend(_stage_changes(list(transitions)))
        if index == at_index:
            state, transitions = merge_anonymous(state, anonymous, "u-1", config)
            changes.extend(_stage_changes(list(transitions)))
            assert all(t.subject == "u-1" for t in transitions)
    assert state is not None
    state, transitions = expire(state, max(user_journey.end, anonymous_journey.end), config)
    changes.extend(_stage_changes(list(transitions)))
    previous: Stage | None = None
    for change in changes:
        assert change.transition.data.from_stage == previous
        previous = change.to_stage
    assert state.stage == previous
    user_orders = sum(e.event == "Order Completed" for e in user_journey.events)
    assert state.orders == user_orders + anonymous.orders
    assert (state.user_id, state.is_anonymous) == ("u-1", False)
    assert state.first_seen_at == min(user_journey.events[0].timestamp, anonymous.first_seen_at)


@BOUNDED
@given(journeys())
def test_expire_twice_at_the_same_moment_fires_nothing_more(journey: Journey) -> None:
    state, _ = in_event_time(journey)
    again = expire(state, journey.end, journey.config)
    assert again.transitions == ()
    assert again.state == state
