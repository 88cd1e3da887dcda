"""The outbox keeps no index on transition_id.

Every transition was inserted into that index (a random uuid, a random page) and
deleted from it again once published, only so that recovery, on a takeover, could
delete the rows it found in the topic by id. Recovery now scans the outbox for them
instead (it is bounded by STAGE_OUTBOX_MAX_BACKLOG). An id is queued once because
only ids new to the history are queued, in the same transaction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AWARE = sa.DateTime(timezone=True)
# PostgreSQL's name for the constraint `unique=True` made in 0001.
_PG_UNIQUE = "stage_engine_outbox_transition_id_key"


def _outbox(*, unique: bool) -> sa.Table:
    return sa.Table(
        "stage_engine_outbox",
        sa.MetaData(),
        sa.Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(64), nullable=False, unique=unique),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("created_at", _AWARE, nullable=False),
        sa.Index("stage_engine_outbox_partition", "partition", "seq"),
    )


def upgrade() -> None:
    if _on_sqlite():
        _copy_outbox(unique=False)
        return
    op.drop_constraint(_PG_UNIQUE, "stage_engine_outbox", type_="unique")


def downgrade() -> None:
    if _on_sqlite():
        _copy_outbox(unique=True)
        return
    op.create_unique_constraint(_PG_UNIQUE, "stage_engine_outbox", ["transition_id"])


def _on_sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


def _copy_outbox(*, unique: bool) -> None:
    """SQLite cannot drop or add a constraint: the table is copied into its new shape."""
    with op.batch_alter_table(
        "stage_engine_outbox", copy_from=_outbox(unique=unique), recreate="always"
    ):
        pass
