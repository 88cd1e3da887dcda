"""What an assignment decides before seeking: stored offsets past the log's end are
read again from the beginning; partitions not taken are tracked until taken or revoked."""

from __future__ import annotations

from stage_engine.ownership import Ownership
from stage_engine.store.offsets import OffsetReset, StoredOffset, beyond_log_end


def test_only_offsets_past_the_end_are_reset_to_the_beginning() -> None:
    stored = {
        0: StoredOffset(120, None),  # the log was recreated: it ends at 3
        1: StoredOffset(40, None),  # caught up exactly: fine
        2: StoredOffset(10, None),  # behind: fine
        3: StoredOffset(9, None),  # past the end, log truncated after retention moved on
    }
    ends = {0: 3, 1: 40, 2: 55, 3: 7}
    beginnings = {0: 0, 1: 0, 2: 0, 3: 5}
    assert beyond_log_end(stored, ends, beginnings) == [
        OffsetReset(partition=0, stored=120, log_end=3, beginning=0),
        OffsetReset(partition=3, stored=9, log_end=7, beginning=5),
    ]


def test_partitions_not_taken_until_taken_or_released() -> None:
    ownership = Ownership()
    ownership.could_not_take([0, 1, 2])
    assert ownership.not_taken == {0, 1, 2}
    assert ownership.partitions == frozenset(), "not owned: nothing reads them"
    ownership.take({0: StoredOffset(7, None)})
    ownership.release([1])
    assert ownership.not_taken == {2}
    assert ownership.partitions == {0}
    assert ownership.position(0) == 7
