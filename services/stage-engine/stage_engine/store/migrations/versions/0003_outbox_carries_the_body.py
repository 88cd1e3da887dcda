"""Each outbox row carries the subject (the Kafka key) and the body it is published with.

The relay used to join every row it took to the history for them: a primary-key probe
into a table that only grows, whose pages a lagging relay no longer finds in
PostgreSQL's buffers (17 µs a row in bench-stage's timer run). The body is written
twice (history and outbox), and the outbox copy is deleted once Kafka has it.

Rows queued before this revision get theirs from the history; a row whose id is not in
the history could not be published before either (the join dropped it) and is
removed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FROM_HISTORY = """
UPDATE stage_engine_outbox SET
    subject = (SELECT t.subject FROM stage_engine_transitions AS t
               WHERE t.id = stage_engine_outbox.transition_id),
    body = (SELECT t.body FROM stage_engine_transitions AS t
            WHERE t.id = stage_engine_outbox.transition_id)
"""


def upgrade() -> None:
    with op.batch_alter_table("stage_engine_outbox") as batch:
        batch.add_column(sa.Column("subject", sa.String(200), nullable=True))
        batch.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
    op.execute(_FROM_HISTORY)
    op.execute("DELETE FROM stage_engine_outbox WHERE body IS NULL")
    with op.batch_alter_table("stage_engine_outbox") as batch:
        batch.alter_column("subject", existing_type=sa.String(200), nullable=False)
        batch.alter_column("body", existing_type=sa.LargeBinary, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("stage_engine_outbox") as batch:
        batch.drop_column("body")
        batch.drop_column("subject")
