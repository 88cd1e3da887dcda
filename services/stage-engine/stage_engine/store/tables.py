"""Table definitions. Every name starts with `stage_engine_` so the engine can share a
database with the notifier (as in `make run`) without clashes. The migrations in
migrations/versions/ create exactly these (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from stage_engine.store.types import UtcDateTime

metadata = MetaData()

_KEY = String(200)  # user ids and anonymous ids (the Event contract's max length)

# One row per profile key (a user id, or the anonymous id of a prospect). `state` is the
# core's UserState in its stored form (lifecycle/stored.py) as JSON text; the columns
# beside it are copies the engine queries by: `partition` (the events partition that
# owns the row's timers), `stage` (counts), `next_due_at` (the timer index).
users = Table(
    "stage_engine_users",
    metadata,
    Column("user_id", _KEY, primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("is_anonymous", Boolean, nullable=False),
    Column("next_due_at", UtcDateTime()),
    Column("state", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(
        "stage_engine_users_due",
        "partition",
        "next_due_at",
        postgresql_where=text("next_due_at IS NOT NULL"),
        sqlite_where=text("next_due_at IS NOT NULL"),
    ),
    Index("stage_engine_users_stage", "stage"),
)

# The next offset to consume per events partition, written in the batch's transaction;
# `max_event_time` is the highest event time applied (the event-clock watermark's base).
offsets = Table(
    "stage_engine_offsets",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("max_event_time", UtcDateTime()),
)

# messageIds applied within the dedup window, by the time ingest received them.
seen_messages = Table(
    "stage_engine_seen_messages",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Index("stage_engine_seen_messages_age", "partition", "received_at"),
)

# An anonymous id (or a merged user id) -> the user profile it was merged into.
aliases = Table(
    "stage_engine_aliases",
    metadata,
    Column("alias", _KEY, primary_key=True),
    Column("user_id", _KEY, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("stage_engine_aliases_user", "user_id"),
)

# Every transition ever emitted (a user's history; merges move rows to the user).
# `subject` is the user id the transition was made for: the Kafka key it is published with.
#
# The history is also the outbox (migration 0004): a transition is queued as row `seq`
# of events partition `partition` (its user row's partition, whose owner relays it),
# and is published once that partition's cursor (outbox_cursors) passes it. Seqs are
# 1, 2, 3... per partition in commit order: a writer reserves them in outbox_heads, and
# the row lock it takes there is held until its commit, so a later seq never commits
# before an earlier one and a cursor never skips a row. Nothing is deleted on
# publication: a queue table that deletes its rows leaves dead tuples that every
# read of the queue walks until vacuum comes (in a serial probe of rounds of 5,000
# timers, each relayed at once, taking from the outbox table cost 5.8 µs of PostgreSQL
# time a row over 40,000 timers and 230 µs over 150,000; reading past a cursor, 2.9).
# `queued_at` (PostgreSQL: the server's `now()`, the transaction's start) bounds how
# far back recovery reads the topic.
# The three are NULL for transitions published before revision 0004.
transitions = Table(
    "stage_engine_transitions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", _KEY, nullable=False),
    Column("subject", _KEY, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("partition", Integer),
    Column("seq", BigInteger),
    Column("queued_at", UtcDateTime()),
    Index("stage_engine_transitions_user", "user_id", "occurred_at"),
    Index(
        "stage_engine_transitions_queue",
        "partition",
        "seq",
        unique=True,
        postgresql_where=text("seq IS NOT NULL"),
        sqlite_where=text("seq IS NOT NULL"),
    ),
)

# The last seq reserved per partition. Written by the transactions that queue transitions.
outbox_heads = Table(
    "stage_engine_outbox_heads",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("queued_seq", BigInteger, nullable=False),
)

# The last seq Kafka acknowledged per partition. Written by the relay only: apart from
# the heads, so a relay round holding its cursors while Kafka answers never holds up
# a writer.
outbox_cursors = Table(
    "stage_engine_outbox_cursors",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("published_seq", BigInteger, nullable=False),
)

# Stored user rows the engine could no longer read (lifecycle/stored.py refused them),
# moved here with the error by the transaction that met them (store/quarantine.py): the
# user starts afresh, and an operator can inspect the row and repair or drop it.
quarantine = Table(
    "stage_engine_quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", _KEY, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("quarantined_at", UtcDateTime(), nullable=False),
    Index("stage_engine_quarantine_user", "user_id"),
)

# The RFM quantile edges last computed from the population (a single row, id 1).
rfm_edges = Table(
    "stage_engine_rfm_edges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("edges", Text, nullable=False),
    Column("computed_at", UtcDateTime(), nullable=False),
)

RFM_EDGES_ROW_ID = 1
