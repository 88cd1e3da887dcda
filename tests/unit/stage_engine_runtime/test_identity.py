"""Routing events to profiles and merging anonymous profiles, on in-memory rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stage_engine.identity import Profiles, keys_of, merge_source
from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.store.users import StoredUser

from shared.events import Event
from shared.transitions import Stage

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONFIG = LifecycleConfig()


def ev(type_: str, minutes: int = 0, **fields: Any) -> Event:
    at = T0 + timedelta(minutes=minutes)
    base: dict[str, Any] = {
        "message_id": f"m{minutes}{type_}",
        "type": type_,
        "timestamp": at,
        "received_at": at,
    }
    if type_ in ("page", "track"):
        base["event" if type_ == "track" else "name"] = "Home"
    base.update(fields)
    return Event.model_validate(base)


def stored(event: Event, partition: int) -> StoredUser:
    return StoredUser(advance(None, event, CONFIG).state, partition)


def test_merge_source_is_the_anonymous_id_of_an_identify_or_the_previous_id_of_an_alias() -> None:
    assert merge_source(ev("identify", user_id="u", anonymous_id="a")) == "a"
    assert merge_source(ev("alias", user_id="u", previous_id="old")) == "old"
    assert merge_source(ev("track", user_id="u", anonymous_id="a")) is None
    assert merge_source(ev("identify", user_id="u")) is None
    assert merge_source(ev("identify", user_id="u", anonymous_id="u")) is None
    assert sorted(keys_of(ev("alias", user_id="u", previous_id="p", anonymous_id="a"))) == [
        "a",
        "p",
        "u",
    ]


def test_identify_folds_the_anonymous_profile_into_a_new_user() -> None:
    anon = stored(ev("page", anonymous_id="a"), partition=2)
    profiles = Profiles(users={"a": anon}, aliases={}, config=CONFIG)
    profiles.merge(ev("identify", 5, user_id="u", anonymous_id="a"), partition=0)
    assert set(profiles.users) == {"u"}
    assert profiles.users["u"].state.user_id == "u"
    assert profiles.users["u"].state.is_anonymous is False
    assert profiles.users["u"].partition == 0  # the user's own partition owns the row now
    assert profiles.deleted == {"a"}
    assert profiles.new_aliases == {"a": "u"}
    assert profiles.merged_into == {"a": "u"}
    assert profiles.resolve("a") == "u"


def test_identify_folds_into_an_existing_user_keeping_its_partition() -> None:
    anon = stored(ev("page", anonymous_id="a"), partition=2)
    user = stored(ev("track", 1, user_id="u"), partition=1)
    profiles = Profiles(users={"a": anon, "u": user}, aliases={}, config=CONFIG)
    profiles.merge(ev("identify", 5, user_id="u", anonymous_id="a"), partition=1)
    assert set(profiles.users) == {"u"}
    assert profiles.users["u"].partition == 1
    assert profiles.users["u"].state.first_seen_at == T0  # the anonymous visit's time


def test_an_unknown_anonymous_id_becomes_an_alias_for_later_events() -> None:
    profiles = Profiles(users={}, aliases={}, config=CONFIG)
    profiles.merge(ev("identify", user_id="u", anonymous_id="a"), partition=0)
    assert profiles.new_aliases == {"a": "u"}
    assert profiles.deleted == set()


def test_an_anonymous_id_merged_into_another_user_stays_there() -> None:
    other = stored(ev("track", user_id="v"), partition=0)
    profiles = Profiles(users={"v": other}, aliases={"a": "v"}, config=CONFIG)
    profiles.merge(ev("identify", 3, user_id="u", anonymous_id="a"), partition=0)
    assert profiles.resolve("a") == "v"
    assert profiles.new_aliases == {}


def test_a_chain_of_merges_leaves_every_alias_one_hop_from_the_survivor() -> None:
    a = stored(ev("page", anonymous_id="a"), partition=0)
    b = stored(ev("page", 1, anonymous_id="b"), partition=0)
    profiles = Profiles(users={"a": a, "b": b}, aliases={"z": "a"}, config=CONFIG)
    profiles.merge(ev("alias", 2, user_id="b", previous_id="a"), partition=0)
    profiles.merge(ev("alias", 3, user_id="c", previous_id="b"), partition=0)
    assert set(profiles.users) == {"c"}
    assert profiles.aliases == {"z": "c", "a": "c", "b": "c"}
    assert profiles.merged_into == {"a": "c", "b": "c"}
    assert profiles.users["c"].state.stage is Stage.PROSPECT


def test_an_orphan_row_with_an_alias_is_folded_into_its_target() -> None:
    orphan = stored(ev("page", anonymous_id="a"), partition=2)
    user = stored(ev("track", 1, user_id="u"), partition=1)
    profiles = Profiles(users={"a": orphan, "u": user}, aliases={"a": "u"}, config=CONFIG)
    profiles.repair_orphans()
    assert set(profiles.users) == {"u"}
    assert profiles.deleted == {"a"}
    assert profiles.merged_into == {"a": "u"}
