"""How a relay round's batch is split among the partitions with rows waiting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from stage_engine.relay import share


def test_one_partition_alone_gets_the_whole_round() -> None:
    assert share(2000, {3: 50_000}) == {3: 2000}


def test_busy_partitions_get_equal_shares() -> None:
    assert share(12, {0: 100, 1: 100, 2: 100}) == {0: 4, 1: 4, 2: 4}


def test_what_a_partition_cannot_use_goes_to_the_others() -> None:
    assert share(10, {0: 2, 1: 100, 2: 0}) == {0: 2, 1: 8}


def test_never_more_than_waits() -> None:
    assert share(100, {0: 3, 1: 4}) == {0: 3, 1: 4}
    assert share(100, {}) == {}


@given(
    batch=st.integers(min_value=1, max_value=5000),
    waiting=st.dictionaries(
        st.integers(min_value=0, max_value=63), st.integers(min_value=0, max_value=3000)
    ),
)
def test_the_round_is_filled_fairly(batch: int, waiting: dict[int, int]) -> None:
    shares = share(batch, waiting)
    assert sum(shares.values()) == min(batch, sum(waiting.values()))
    assert all(0 < n <= waiting[p] for p, n in shares.items())
    # A partition left with rows waiting got at least as much as any other, but one.
    most = max(shares.values(), default=0)
    for partition, rows in waiting.items():
        if shares.get(partition, 0) < rows:
            assert shares.get(partition, 0) >= most - 1
