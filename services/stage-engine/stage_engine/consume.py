"""One polled batch = one database transaction (Quix's checkpoint, in numbered steps).

1. record the batch's messageIds, dropping those applied within the dedup window (or
   twice in the batch);
2. lock the user rows of every key the batch names in one query, in user-id order, then
   read their aliases (and lock the alias targets not locked yet); a stored row that can
   no longer be read is quarantined (store/quarantine.py) and the user starts afresh;
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

A batch that fails for a reason of its own records (the rules refuse a value, the
database refuses a row), not the infrastructure's (shared/faults.py), is run again in
a new transaction that isolates them: halves of the batch are applied under savepoints,
a failing half is halved again, and each single event that still fails is dead-lettered
with its error before the transaction (with every offset) commits. The other events are
applied once, in their order. Killed after the dead letters were sent but before the
commit: the batch comes back and the same events are dead-lettered again (duplicates
carry the same source offset).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import Clock
from shared.faults import fault_text, is_record_fault
from shared.isolate import apply_isolating
from shared.kafka.dead_letter import DeadLetter
from stage_engine.decode import DecodedBatch, Located
from stage_engine.identity import Profiles, keys_of
from stage_engine.lifecycle import LifecycleConfig, advance
from stage_engine.metrics import EngineMetrics
from stage_engine.store import aliases as alias_store
from stage_engine.store import dedup, transitions, users
from stage_engine.store.database import Database, is_retryable
from stage_engine.store.offsets import FencedError, OffsetMove, move_offsets
from stage_engine.store.quarantine import UnreadableRow
from stage_engine.store.transitions import NewTransition
from stage_engine.store.users import StoredUser

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(slots=True)
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: list[DeadLetter] = field(default_factory=list)  # dead-lettered events
    quarantined: int = 0  # stored rows that could not be read

    def add(self, other: BatchOutcome) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.transitions.update(other.transitions)
        self.rejected.extend(other.rejected)
        self.quarantined += other.quarantined


SendDeadLetters = Callable[[list[DeadLetter]], Awaitable[None]]


class BatchApplier:
    """Applies decoded batches; the only writer of user rows outside the timer loop."""

    def __init__(
        self,
        *,
        db: Database,
        topic: str,
        metrics: EngineMetrics,
        clock: Clock,
        dead_letter: SendDeadLetters,
    ) -> None:
        self._db = db
        self._topic = topic
        self._metrics = metrics
        self._clock = clock
        self._dead_letter = dead_letter

    async def apply(self, batch: DecodedBatch, config: LifecycleConfig) -> BatchOutcome:
        """Run the batch's transaction, again after a deadlock or a busy database.

        Raises FencedError (nothing written) when another engine moved an offset, and
        infrastructure faults (the caller pauses and reads the batch again).
        """
        isolating = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._db.write() as conn:
                    run = self._apply_isolating if isolating else self._apply
                    return await run(conn, batch, config)
            except FencedError:
                raise
            except Exception as exc:
                if not isolating and is_record_fault(exc):
                    log.warning(
                        "batch failed on its own records; isolating them",
                        extra={"error": describe(exc), "events": len(batch.events)},
                    )
                    isolating = True
                    continue
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
        outcome = await self._apply_events(conn, batch.events, config, self._clock.now())
        # 5. Offsets, fenced: last, so a fenced batch has done nothing.
        await move_offsets(conn, self._topic, self._moves(batch))
        return outcome

    async def _apply_isolating(
        self, conn: AsyncConnection, batch: DecodedBatch, config: LifecycleConfig
    ) -> BatchOutcome:
        now = self._clock.now()
        outcome = BatchOutcome()

        async def apply_slice(events: Sequence[Located]) -> None:
            async with conn.begin_nested():
                outcome.add(await self._apply_events(conn, list(events), config, now))

        refused = await apply_isolating(batch.events, apply_slice)
        outcome.rejected = [_dead_letter(self._topic, event, exc) for event, exc in refused]
        # Before the commit: killed between the two, the batch is redone (see above).
        await self._dead_letter(outcome.rejected)
        await move_offsets(conn, self._topic, self._moves(batch))
        return outcome

    async def _apply_events(
        self,
        conn: AsyncConnection,
        events: list[Located],
        config: LifecycleConfig,
        now: datetime,
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        # 1. Dedup.
        fresh = await self._fresh(conn, events)
        outcome.duplicates = len(events) - len(fresh)
        # 2. Aliases, then the user rows, locked.
        profiles = await self._load(conn, fresh, config, now, outcome)
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
        self,
        conn: AsyncConnection,
        events: list[Located],
        config: LifecycleConfig,
        now: datetime,
        outcome: BatchOutcome,
    ) -> Profiles:
        keys = {key for located in events for key in keys_of(located.event)}
        # Lock first, then read the aliases: a merge by another engine that moved one of
        # these rows has committed by now (its alias is visible), or waits for this batch.
        quarantined: list[UnreadableRow] = []
        loaded = await users.lock_users(conn, keys, now=now, quarantined=quarantined)
        known = await alias_store.resolve_aliases(conn, keys)
        targets = set(known.values()) - set(loaded)
        if targets:  # users that merged an id of this batch in an earlier batch
            loaded.update(await users.lock_users(conn, targets, now=now, quarantined=quarantined))
        outcome.quarantined += len(quarantined)
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


def describe(exc: BaseException) -> str:
    """The error as a dead letter's header says it."""
    who = "the database" if isinstance(exc, DBAPIError) else "the rules"
    return f"rejected by {who}: {fault_text(exc)}"


def _dead_letter(topic: str, located: Located, exc: BaseException) -> DeadLetter:
    return DeadLetter(
        topic, located.partition, located.offset, located.key, located.value, describe(exc)
    )
