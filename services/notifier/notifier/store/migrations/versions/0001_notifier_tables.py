"""The notifier's tables: actions ledger, transitions, coupons, outbox, suppressions,
reactivations.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AWARE = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifier_actions",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(64), nullable=False),
        sa.Column("ledger_key", sa.String(300), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(140), nullable=False),
        sa.Column("action", sa.String(140), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("in_holdout", sa.Boolean, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("due_at", _AWARE, nullable=False),
        sa.Column("not_before", _AWARE, nullable=False),
        sa.Column("transition_at", _AWARE, nullable=False),
        sa.Column("planned_at", _AWARE, nullable=False),
        sa.Column("finished_at", _AWARE),
        sa.Column("provider_message_id", sa.Text),
        sa.UniqueConstraint("transition_id", "ledger_key", name="notifier_actions_once"),
    )
    op.create_index(
        "notifier_actions_due",
        "notifier_actions",
        ["due_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "notifier_actions_user_channel", "notifier_actions", ["user_id", "channel", "finished_at"]
    )
    op.create_index(
        "notifier_actions_rule_channel", "notifier_actions", ["rule", "channel", "in_holdout"]
    )
    op.create_table(
        "notifier_transitions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("occurred_at", _AWARE, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "notifier_coupons",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("transition_id", sa.String(64), nullable=False),
        sa.Column("ledger_key", sa.String(300), nullable=False),
        sa.Column("rule", sa.String(140), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expires_at", _AWARE, nullable=False),
        sa.Column("issued_at", _AWARE, nullable=False),
        sa.UniqueConstraint("transition_id", "ledger_key", name="notifier_coupons_once"),
    )
    op.create_index("notifier_coupons_user", "notifier_coupons", ["user_id"])
    op.create_table(
        "notifier_outbox",
        sa.Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record_key", sa.LargeBinary, nullable=False),
        sa.Column("record_value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON),
    )
    op.create_table(
        "notifier_suppressions",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", _AWARE, nullable=False),
    )
    op.create_table(
        "notifier_reactivations",
        sa.Column("transition_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("reactivated_at", _AWARE, nullable=False),
    )
    op.create_index(
        "notifier_reactivations_user", "notifier_reactivations", ["user_id", "reactivated_at"]
    )


def downgrade() -> None:
    for table in (
        "notifier_reactivations",
        "notifier_suppressions",
        "notifier_outbox",
        "notifier_coupons",
        "notifier_transitions",
        "notifier_actions",
    ):
        op.drop_table(table)
