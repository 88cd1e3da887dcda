"""Table definitions. Every name starts with `notifier_` so the notifier can share a
database with the stage engine without clashes; migrations create exactly these.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL and on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the notifier stores aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_AWARE = UtcDateTime()

# Status of an action; a pending one is waiting for its due time, its lease or a retry.
PENDING = "pending"
SENT = "sent"
SKIPPED = "skipped"
FAILED = "failed"

# The ledger and outbox of actions: one row per (transition, rule/action), ever.
actions = Table(
    "notifier_actions",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("transition_id", String(64), nullable=False),
    Column("ledger_key", String(300), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("rule", String(140), nullable=False),
    Column("action", String(140), nullable=False),
    Column("position", SmallInteger, nullable=False),  # order within its rule
    Column("channel", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("in_holdout", Boolean, nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Policy time (the notifier's clock): not before the end of quiet hours.
    Column("due_at", _AWARE, nullable=False),
    # Wall time: the lease of a sender that claimed it, or the retry backoff.
    Column("not_before", _AWARE, nullable=False),
    Column("transition_at", _AWARE, nullable=False),
    Column("planned_at", _AWARE, nullable=False),
    Column("finished_at", _AWARE),  # policy time it was sent, skipped or failed
    Column("provider_message_id", Text),
    UniqueConstraint("transition_id", "ledger_key", name="notifier_actions_once"),
    Index(
        "notifier_actions_due",
        "due_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("notifier_actions_user_channel", "user_id", "channel", "finished_at"),
    Index("notifier_actions_rule_channel", "rule", "channel", "in_holdout"),
)

# The transitions that planned at least one action, as received (encoded bytes).
transitions = Table(
    "notifier_transitions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("occurred_at", _AWARE, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

coupons = Table(
    "notifier_coupons",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("transition_id", String(64), nullable=False),
    Column("ledger_key", String(300), nullable=False),
    Column("rule", String(140), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expires_at", _AWARE, nullable=False),
    Column("issued_at", _AWARE, nullable=False),
    UniqueConstraint("transition_id", "ledger_key", name="notifier_coupons_once"),
    Index("notifier_coupons_user", "user_id"),
)

# Records waiting to be published to Kafka (outcomes, dead-lettered actions).
outbox = Table(
    "notifier_outbox",
    metadata,
    Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
    Column("record_id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # OUTCOME or DEAD_LETTER
    Column("record_key", LargeBinary, nullable=False),
    Column("record_value", LargeBinary, nullable=False),
    Column("headers", JSON),
)

suppressions = Table(
    "notifier_suppressions",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("channel", String(20), primary_key=True),  # ALL_CHANNELS for every contact channel
    Column("reason", Text, nullable=False),
    Column("created_at", _AWARE, nullable=False),
)

reactivations = Table(
    "notifier_reactivations",
    metadata,
    Column("transition_id", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("reactivated_at", _AWARE, nullable=False),
    Index("notifier_reactivations_user", "user_id", "reactivated_at"),
)

ALL_CHANNELS = "*"
OUTCOME = "outcome"
DEAD_LETTER = "dead_letter"
