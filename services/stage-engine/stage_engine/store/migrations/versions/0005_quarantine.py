"""The quarantine: user rows the engine can no longer read, kept with their error.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_engine_quarantine",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("stage_engine_quarantine_user", "stage_engine_quarantine", ["user_id"])


def downgrade() -> None:
    op.drop_index("stage_engine_quarantine_user", table_name="stage_engine_quarantine")
    op.drop_table("stage_engine_quarantine")
