"""The decoded-transition cache shared by the consumer and the senders: bounded, oldest out."""

from __future__ import annotations

from notifier.recent import RecentTransitions

from tests.unit.notifier.factories import make_transition


def test_keeps_the_newest_entries_up_to_its_bound() -> None:
    recent = RecentTransitions(max_entries=3)
    made = [make_transition(user_id=f"u-{n}") for n in range(5)]
    for item in made:
        recent.put(item)
    assert len(recent) == 3
    assert recent.get(made[0].id) is None
    assert recent.get(made[1].id) is None
    assert recent.get(made[4].id) == made[4]


def test_a_zero_bound_caches_nothing() -> None:
    recent = RecentTransitions(max_entries=0)
    item = make_transition(user_id="u-1")
    recent.put(item)
    assert recent.get(item.id) is None
    assert len(recent) == 0
