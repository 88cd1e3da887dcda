"""Find the records of a batch that fail on their own, by applying halves.

Both consumers use it after a batch failed on a record fault (shared/faults.py): the
stage engine applies each slice under a savepoint of the batch's transaction, the
notifier plans each in its own transaction. A slice that fails is halved, down to
single records; those are returned with their errors, every other record is applied
once, in the batch's order. A failure that is no record fault (the infrastructure's,
or a bug) propagates at once: the caller pauses or stops, and nothing is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from shared.faults import is_record_fault

T = TypeVar("T")


async def apply_isolating(
    items: Sequence[T], apply: Callable[[Sequence[T]], Awaitable[None]]
) -> list[tuple[T, BaseException]]:
    """Apply `items` slice by slice; the items that fail alone, with their errors."""
    refused: list[tuple[T, BaseException]] = []
    pending = [items]  # slices still to apply, the next one last
    while pending:
        part = pending.pop()
        try:
            await apply(part)
        except Exception as exc:
            if not is_record_fault(exc):
                raise
            if len(part) == 1:
                refused.append((part[0], exc))
            else:
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]
    return refused
