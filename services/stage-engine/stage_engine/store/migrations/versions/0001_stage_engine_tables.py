"""Create the stage engine's tables.

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
        "stage_engine_users",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("is_anonymous", sa.Boolean, nullable=False),
        sa.Column("next_due_at", _AWARE),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", _AWARE, nullable=False),
    )
    op.create_index(
        "stage_engine_users_due",
        "stage_engine_users",
        ["partition", "next_due_at"],
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
        sqlite_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_index("stage_engine_users_stage", "stage_engine_users", ["stage"])
    op.create_table(
        "stage_engine_offsets",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("max_event_time", _AWARE),
    )
    op.create_table(
        "stage_engine_seen_messages",
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("received_at", _AWARE, nullable=False),
    )
    op.create_index(
        "stage_engine_seen_messages_age",
        "stage_engine_seen_messages",
        ["partition", "received_at"],
    )
    op.create_table(
        "stage_engine_aliases",
        sa.Column("alias", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("created_at", _AWARE, nullable=False),
    )
    op.create_index("stage_engine_aliases_user", "stage_engine_aliases", ["user_id"])
    op.create_table(
        "stage_engine_transitions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("occurred_at", _AWARE, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "stage_engine_transitions_user", "stage_engine_transitions", ["user_id", "occurred_at"]
    )
    op.create_table(
        "stage_engine_outbox",
        sa.Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(64), nullable=False, unique=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("created_at", _AWARE, nullable=False),
    )
    op.create_index("stage_engine_outbox_partition", "stage_engine_outbox", ["partition", "seq"])
    op.create_table(
        "stage_engine_rfm_edges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("edges", sa.Text, nullable=False),
        sa.Column("computed_at", _AWARE, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "stage_engine_rfm_edges",
        "stage_engine_outbox",
        "stage_engine_transitions",
        "stage_engine_aliases",
        "stage_engine_seen_messages",
        "stage_engine_offsets",
        "stage_engine_users",
    ):
        op.drop_table(name)
