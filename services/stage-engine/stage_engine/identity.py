"""Which profile an event belongs to, and merges of anonymous profiles into users.

Pure bookkeeping over the rows a batch loaded (no I/O): the batch transaction loads
the aliases and the locked user rows, this decides, the transaction writes it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.events import Event
from stage_engine.lifecycle import LifecycleConfig, merge_anonymous
from stage_engine.lifecycle.emit import Emitted
from stage_engine.store.users import StoredUser


def keys_of(event: Event) -> Iterable[str]:
    """Every profile key an event can touch (its own, and the ones it may merge)."""
    for key in (event.user_id, event.anonymous_id, event.previous_id):
        if key:
            yield key


def merge_source(event: Event) -> str | None:
    """The key an identify or alias joins to its user id, if it joins one."""
    if not event.user_id:
        return None
    if event.type == "identify":
        source = event.anonymous_id
    elif event.type == "alias":
        source = event.previous_id or event.anonymous_id
    else:
        return None
    return source if source and source != event.user_id else None


@dataclass(slots=True)
class Profiles:
    """The profiles one batch works on: loaded rows, the alias map, and what changed."""

    users: dict[str, StoredUser]
    aliases: dict[str, str]  # alias -> user id, always one hop
    config: LifecycleConfig
    dirty: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    new_aliases: dict[str, str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)  # profile merged away -> target
    transitions: list[tuple[Emitted, int]] = field(default_factory=list)

    def resolve(self, key: str) -> str:
        target = self.aliases.get(key)
        return target if target is not None and target in self.users else key

    def put(self, key: str, stored: StoredUser, transitions: Iterable[Emitted]) -> None:
        self.users[key] = stored
        self.dirty.add(key)
        self.deleted.discard(key)
        self.transitions.extend((transition, stored.partition) for transition in transitions)

    def repair_orphans(self) -> None:
        """A profile that has both a row and an alias (created by an anonymous event
        racing its merge in another partition) is folded into its alias target now."""
        for alias, target in sorted(self.aliases.items()):
            orphan = self.users.get(alias)
            if orphan is not None and alias != target and target in self.users:
                self._fold(alias, target, orphan.partition)

    def merge(self, event: Event, partition: int) -> None:
        """Apply the identity part of an identify/alias that joins two ids."""
        source = merge_source(event)
        if source is None or event.user_id is None:
            return
        target = self.resolve(event.user_id)
        current = self.aliases.get(source)
        if current is not None and current != target and current in self.users:
            return  # merged into another user before (a shared device): it stays there
        if self.resolve(source) == target:
            return
        if source in self.users:
            self._fold(source, target, partition)
        else:
            self._alias(source, target)  # later anonymous events go to the user

    def _fold(self, source: str, target: str, partition: int) -> None:
        anonymous = self.users.pop(source)
        self.dirty.discard(source)
        self.deleted.add(source)
        user = self.users.get(target)
        step = merge_anonymous(user.state if user else None, anonymous.state, target, self.config)
        self.put(
            target, StoredUser(step.state, user.partition if user else partition), step.transitions
        )
        self._alias(source, target)
        # Whatever pointed at `source` (earlier merges) now points at `target`.
        for earlier, old_target in list(self.merged_into.items()):
            if old_target == source:
                self.merged_into[earlier] = target
        self.merged_into[source] = target

    def _alias(self, alias: str, target: str) -> None:
        for known, old_target in list(self.aliases.items()):
            if old_target == alias:
                self.aliases[known] = target
                if known in self.new_aliases:
                    self.new_aliases[known] = target
        self.aliases[alias] = target
        self.new_aliases[alias] = target
