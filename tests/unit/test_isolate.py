"""Halving a failed batch finds the records that fail alone; the others apply once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shared.isolate import apply_isolating


class _Store:
    def __init__(self, bad: set[int], error: Exception | None = None) -> None:
        self.bad = bad
        self.error = error
        self.applied: list[int] = []
        self.attempts = 0

    async def apply(self, part: Sequence[int]) -> None:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        if self.bad & set(part):
            raise ValueError(f"refused: {sorted(self.bad & set(part))}")
        self.applied += part  # a slice is all or nothing, like its transaction


async def test_the_bad_records_are_refused_and_the_others_applied_once_in_order() -> None:
    store = _Store(bad={3, 7})
    refused = await apply_isolating(list(range(10)), store.apply)
    assert [item for item, _ in refused] == [3, 7]
    assert all(isinstance(exc, ValueError) for _, exc in refused)
    assert store.applied == [0, 1, 2, 4, 5, 6, 8, 9]


async def test_a_clean_batch_is_one_attempt() -> None:
    store = _Store(bad=set())
    assert await apply_isolating([1, 2, 3], store.apply) == []
    assert store.attempts == 1


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "refused"), TypeError("bug")])
async def test_an_outage_or_a_bug_propagates_and_nothing_is_refused(error: Exception) -> None:
    store = _Store(bad=set(), error=error)
    with pytest.raises(type(error)):
        await apply_isolating([1, 2, 3], store.apply)
    assert store.attempts == 1
