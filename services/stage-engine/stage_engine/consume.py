"""One polled batch = one database transaction (Quix's checkpoint, in numbered steps).

1. record the batch's messageIds, dropping those applied within the dedup window (or
   twice in the batch);
2. lock the user rows of every key the batch names in one query, in user-id order, then
   read their aliases (and lock the alias targets not locked yet);
3. apply the pure core (merges, advance) in offset order per partition;
4. write: states (multi-row upsert), merged-away rows deleted, aliases, transitions into
   the history, queued in the outbox as the next seqs of their partitions;
5. move each partition's stored offset from the batch's start to its end, fenced: if the
   stored offset is not the start any more, another engine owns the partition and the
   whole transaction rolls back.
Killed anywhere before the commit: nothing of the batch is stored, it is consumed again
from the stored offsets and produces the same rows and the same transition ids.
Killed right after: the batch is done; at most the Kafka offset commit (lag display
only) is missing.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import Clock
from stage_engine.decode import DecodedBatch, Located
from stage_engine.identity import Profiles, keys_of
from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.metrics import EngineMetrics
from stage_engine.store import aliases as alias_store
from stage_engine.store import dedup, transitions, users
from stage_engine.store.database import Database, is_retryable
from stage_engine.store.offsets import OffsetMove, move_offsets
from stage_engine.store.transitions import NewTransition
from stage_engine.store.users import StoredUser

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(slots=True)
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)


class BatchApplier:
    """Applies decoded batches; the only writer of user rows outside the timer loop."""

    def __init__(
        self,
        *,
        db: Database,
        topic: str,
        metrics: EngineMetrics,
        clock: Clock,
    ) -> None:
        self._db = db
        self._topic = topic
        self._metrics = metrics
        self._clock = clock

    async def apply(self, batch: DecodedBatch, config: LifecycleConfig) -> BatchOutcome:
        """Run the batch's transaction, again after a deadlock or a busy database.

        Raises FencedError (nothing written) when another engine moved an offset.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._db.write() as conn:
                    return await self._apply(conn, batch, config)
            except DBAPIError as exc:
                if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                    raise
                self._metrics.retried.inc()
                log.warning(
                    "batch transaction retried", extra={"attempt": attempt, "error": str(exc)}
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(
        self, conn: AsyncConnection, batch: DecodedBatch, config: LifecycleConfig
    ) -> BatchOutcome:
        now = self._clock.now()
        outcome = BatchOutcome()
        # 1. Dedup.
        fresh = await self._fresh(conn, batch.events)
        outcome.duplicates = len(batch.events) - len(fresh)
        # 2. Aliases, then the user rows, locked.
        profiles = await self._load(conn, fresh, config)
        # 3. The pure core.
        for located in fresh:
            self._apply_event(profiles, located, config)
        outcome.applied = len(fresh)
        # 4. Writes.
        await users.upsert_users(
            conn, self._db, [profiles.users[key] for key in profiles.dirty], now=now
        )
        await users.delete_users(conn, profiles.deleted)
        await alias_store.add_aliases(conn, self._db, profiles.new_aliases, now=now)
        await alias_store.repoint_aliases(conn, profiles.merged_into)
        await transitions.record_transitions(
            conn,
            self._db,
            [
                NewTransition(transition, partition)
                for transition, partition in profiles.transitions
            ],
            now=now,
        )
        await transitions.move_history(conn, profiles.merged_into)
        # 5. Offsets, fenced: last, so a fenced batch has done nothing.
        await move_offsets(conn, self._topic, self._moves(batch))
        for transition, _ in profiles.transitions:
            outcome.transitions[(transition.kind.value, transition.to_stage.value)] += 1
        return outcome

    async def _fresh(self, conn: AsyncConnection, events: list[Located]) -> list[Located]:
        """The events whose messageId is new (first occurrence in the batch), recorded."""
        first: dict[str, Located] = {}
        for located in events:
            first.setdefault(located.event.message_id, located)
        if not first:
            return []
        new = await dedup.remember_new(
            conn,
            self._db,
            [
                dedup.SeenMessage(message_id, e.partition, e.event.received_at)
                for message_id, e in first.items()
            ],
        )
        return [e for message_id, e in first.items() if message_id in new]

    async def _load(
        self, conn: AsyncConnection, events: list[Located], config: LifecycleConfig
    ) -> Profiles:
        keys = {key for located in events for key in keys_of(located.event)}
        # Lock first, then read the aliases: a merge by another engine that moved one of
        # these rows has committed by now (its alias is visible), or waits for this batch.
        loaded = await users.lock_users(conn, keys)
        known = await alias_store.resolve_aliases(conn, keys)
        targets = set(known.values()) - set(loaded)
        if targets:  # users that merged an id of this batch in an earlier batch
            loaded.update(await users.lock_users(conn, targets))
        profiles = Profiles(users=loaded, aliases=known, config=config)
        profiles.repair_orphans()
        return profiles

    @staticmethod
    def _apply_event(profiles: Profiles, located: Located, config: LifecycleConfig) -> None:
        event = located.event
        profiles.merge(event, located.partition)
        key = profiles.resolve(event.partition_key)
        stored = profiles.users.get(key)
        step = advance(stored.state if stored else None, event, config)
        partition = stored.partition if stored else located.partition
        profiles.put(key, StoredUser(step.state, partition), step.transitions)

    def _moves(self, batch: DecodedBatch) -> list[OffsetMove]:
        return [
            OffsetMove(partition, span.start, span.end, span.max_event_time)
            for partition, span in batch.spans.items()
        ]
