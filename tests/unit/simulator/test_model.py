"""The simulated world: deterministic with a seed, every kind of call, answers that lift recall."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from simulator.calls import Call
from simulator.model import Notice, World
from simulator.population import PopulationShape
from stage_engine.lifecycle import LifecycleConfig, UserState, advance, expire, merge_anonymous

from shared.events import Event
from shared.transitions import Stage

START = datetime(2025, 1, 6, tzinfo=UTC)


def world(seed: int = 3, users: int = 300, days: int = 60) -> World:
    return World(shape=PopulationShape(users=users, days=days), seed=seed, start=START)


def all_calls(w: World) -> list[Call]:
    return [call for day in range(w.shape.days) for call in w.plan_day(day)]


def test_the_same_seed_gives_the_same_calls_and_answers() -> None:
    first, second = world(seed=11), world(seed=11)
    assert all_calls(first) == all_calls(second)
    user_id = next(u.user_id for u in first.users if u.signed_up_at is not None)
    notices = [
        Notice(f"n-{i}", user_id, "coupon", START + timedelta(days=10), "CODE1") for i in range(5)
    ]
    now = START + timedelta(days=11)
    assert [first.respond(n, now) for n in notices] == [second.respond(n, now) for n in notices]


def test_another_seed_gives_another_population() -> None:
    assert all_calls(world(seed=1)) != all_calls(world(seed=2))


def test_every_kind_of_call_is_produced() -> None:
    calls = all_calls(world())
    kinds = Counter(call.type for call in calls)
    assert {"track", "identify", "page", "screen"} <= set(kinds)
    events = Counter(call.event for call in calls if call.type == "track")
    assert {"Signed Up", "Order Completed", "Complaint Filed", "Product Viewed"} <= set(events)
    anonymous = [call for call in calls if call.user_id is None]
    assert anonymous, "no anonymous visits"
    assert all(call.anonymous_id for call in anonymous)
    identifies = [call for call in calls if call.type == "identify"]
    assert all(call.user_id and call.anonymous_id and call.traits["email"] for call in identifies)
    orders = [call for call in calls if call.event == "Order Completed"]
    assert all(float(call.properties["revenue"]) > 0 for call in orders)
    assert len({call.message_id for call in calls}) == len(calls), "message ids repeat"


def test_each_day_is_in_time_order_and_never_before_the_day() -> None:
    w = world(users=200, days=20)
    for day in range(20):
        calls = w.plan_day(day)
        assert calls == sorted(calls, key=lambda call: (call.at, call.message_id))
        assert all(call.at >= START + timedelta(days=day) for call in calls)


def test_segment_items_carry_explicit_timestamps_and_no_sent_at() -> None:
    call = next(call for call in all_calls(world(users=50, days=5)) if call.type == "identify")
    item = call.to_segment()
    assert item["type"] == "identify"
    assert item["userId"] == call.user_id
    assert item["anonymousId"] == call.anonymous_id
    assert datetime.fromisoformat(item["timestamp"]) == call.at
    assert "sentAt" not in item
    assert item["traits"]["timezone"]


def test_a_user_answers_a_notice_at_most_once_and_only_after_now() -> None:
    w = world(users=400, days=30)
    all_calls(w)
    signed_up = [u for u in w.users if u.signed_up_at is not None]
    now = START + timedelta(days=20)
    answers = [
        w.respond(
            Notice(f"n-{u.user_id}", u.user_id, "coupon", now - timedelta(hours=1), "C0DE"), now
        )
        for u in signed_up
    ]
    answered = [calls for calls in answers if calls]
    assert answered, "nobody answered a coupon"
    assert all(call.at > now for calls in answered for call in calls)
    assert all(call.user_id for calls in answered for call in calls)
    assert any(call.properties.get("coupon") == "C0DE" for calls in answered for call in calls)
    again = signed_up[0]
    notice = Notice(f"n-{again.user_id}", again.user_id, "coupon", now, "C0DE")
    assert w.respond(notice, now) == []
    assert w.respond(Notice("n-x", "nobody", "coupon", now), now) == []
    assert w.respond(Notice("n-y", again.user_id, "webhook", now), now) == []


def _returned_within(calls: list[Call], users: set[str], since: datetime, days: int) -> int:
    until = since + timedelta(days=days)
    return len({c.user_id for c in calls if c.user_id in users and since <= c.at < until})


def test_users_who_receive_messages_come_back_more_than_a_holdout() -> None:
    w = world(seed=5, users=1_500, days=45)
    now = START + timedelta(days=30)
    last_seen: dict[str, datetime] = {}
    for day in range(30):
        for call in w.plan_day(day):
            if call.user_id:
                last_seen[call.user_id] = call.at
    # Silent or churned by now: signed up, nothing for at least 7 days.
    dormant = sorted(user for user, at in last_seen.items() if at < now - timedelta(days=7))
    assert len(dormant) > 200, len(dormant)
    treated, holdout = set(dormant[::2]), set(dormant[1::2])
    later: list[Call] = []
    for user_id in sorted(treated):
        later += w.respond(Notice(f"t-{user_id}", user_id, "coupon", now, "CPN"), now)
    for day in range(30, 45):
        later += w.plan_day(day)
    treated_rate = _returned_within(later, treated, now, 14) / len(treated)
    holdout_rate = _returned_within(later, holdout, now, 14) / len(holdout)
    assert treated_rate > holdout_rate + 0.1, (treated_rate, holdout_rate)


def _as_event(call: Call) -> Event:
    return Event(
        message_id=call.message_id,
        type=call.type,
        event=call.event,
        name=call.name,
        user_id=call.user_id,
        anonymous_id=call.anonymous_id,
        timestamp=call.at,
        received_at=call.at,
        properties=dict(call.properties),
        traits=dict(call.traits),
    )


def test_the_default_population_reaches_every_stage_under_the_lifecycle_rules() -> None:
    """Through the engine's pure rules in event time: prospects, new, active, silent and churned."""
    w = world(seed=7, users=400, days=60)
    config = LifecycleConfig()
    states: dict[str, UserState] = {}
    for call in sorted(all_calls(w), key=lambda c: (c.at, c.message_id)):
        if call.type == "identify" and call.user_id and call.anonymous_id in states:
            anonymous = states.pop(call.anonymous_id)
            states[call.user_id] = merge_anonymous(
                states.get(call.user_id), anonymous, call.user_id, config
            ).state
        key = call.user_id or call.anonymous_id or ""
        states[key] = advance(states.get(key), _as_event(call), config).state
    stages = Counter(expire(state, w.end, config).state.stage for state in states.values())
    assert set(stages) == set(Stage), stages
