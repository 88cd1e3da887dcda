"""The transitions consumed lately, decoded, so a sender need not parse them again.

Only a cache: the payload stored with the actions stays the source of truth (a
miss, e.g. after a restart or for a retry long after, parses it). Bounded: the
oldest entries go first.
"""

from __future__ import annotations

from shared.transitions import Transition


class RecentTransitions:
    def __init__(self, *, max_entries: int = 20_000) -> None:
        self._max_entries = max_entries
        self._by_id: dict[str, Transition] = {}  # insertion order = age

    def put(self, transition: Transition) -> None:
        self._by_id[transition.id] = transition
        if len(self._by_id) > self._max_entries:
            del self._by_id[next(iter(self._by_id))]

    def get(self, transition_id: str) -> Transition | None:
        return self._by_id.get(transition_id)

    def __len__(self) -> int:
        return len(self._by_id)
