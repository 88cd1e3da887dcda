"""The history is the outbox: per-partition seqs and cursors replace the outbox table.

A transition was written twice (history and outbox, each with its body) and deleted
from the outbox once published. Now it is written once, with its partition and a seq
reserved in `stage_engine_outbox_heads`, and publication moves that partition's
cursor in `stage_engine_outbox_cursors` past it. See tables.py for why the seqs of a
partition commit in order.

Rows waiting in the outbox become the first seqs of their partitions, in outbox
order, with the outbox row's creation time as `queued_at`. Downgrading queues the
transitions past each cursor again in the outbox table of revision 0003.

The queue index is built inside the migration's transaction, by one scan of the
history, which stays locked against writes for that long (the engine migrates before
it starts consuming). Its entries are only the rows that get a seq.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AWARE = sa.DateTime(timezone=True)

# Window functions and UPDATE ... FROM: PostgreSQL and SQLite (3.33 and later) alike.
_NUMBER_THE_WAITING = """
UPDATE stage_engine_transitions SET partition = q.partition, seq = q.n, queued_at = q.created_at
FROM (
    SELECT transition_id, partition, created_at,
           row_number() OVER (PARTITION BY partition ORDER BY seq) AS n
    FROM stage_engine_outbox
) AS q
WHERE stage_engine_transitions.id = q.transition_id
"""
_HEADS_FROM_THE_WAITING = """
INSERT INTO stage_engine_outbox_heads (partition, queued_seq)
SELECT partition, max(seq) FROM stage_engine_transitions
WHERE seq IS NOT NULL GROUP BY partition
"""
_CURSORS_BEFORE_THE_WAITING = """
INSERT INTO stage_engine_outbox_cursors (partition, published_seq)
SELECT partition, 0 FROM stage_engine_outbox_heads
"""
_WAITING_BACK_TO_THE_OUTBOX = """
INSERT INTO stage_engine_outbox (transition_id, partition, created_at, subject, body)
SELECT t.id, t.partition, t.queued_at, t.subject, t.body
FROM stage_engine_transitions AS t
LEFT JOIN stage_engine_outbox_cursors AS c ON c.partition = t.partition
WHERE t.seq > coalesce(c.published_seq, 0)
ORDER BY t.seq, t.partition
"""


def upgrade() -> None:
    with op.batch_alter_table("stage_engine_transitions") as batch:
        batch.add_column(sa.Column("partition", sa.Integer, nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("queued_at", _AWARE, nullable=True))
    if op.get_context().dialect.name == "postgresql":
        # Taken from the server, not sent with every row; SQLite's writer sends its own.
        op.execute("ALTER TABLE stage_engine_transitions ALTER COLUMN queued_at SET DEFAULT now()")
    op.create_table(
        "stage_engine_outbox_heads",
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("queued_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stage_engine_outbox_cursors",
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("published_seq", sa.BigInteger, nullable=False),
    )
    op.execute(_NUMBER_THE_WAITING)
    op.execute(_HEADS_FROM_THE_WAITING)
    op.execute(_CURSORS_BEFORE_THE_WAITING)
    op.create_index(
        "stage_engine_transitions_queue",
        "stage_engine_transitions",
        ["partition", "seq"],
        unique=True,
        postgresql_where=sa.text("seq IS NOT NULL"),
        sqlite_where=sa.text("seq IS NOT NULL"),
    )
    op.drop_table("stage_engine_outbox")


def downgrade() -> None:
    op.create_table(
        "stage_engine_outbox",
        sa.Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(64), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("created_at", _AWARE, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Index("stage_engine_outbox_partition", "partition", "seq"),
    )
    op.execute(_WAITING_BACK_TO_THE_OUTBOX)
    op.drop_index("stage_engine_transitions_queue", table_name="stage_engine_transitions")
    op.drop_table("stage_engine_outbox_cursors")
    op.drop_table("stage_engine_outbox_heads")
    with op.batch_alter_table("stage_engine_transitions") as batch:
        batch.drop_column("queued_at")
        batch.drop_column("seq")
        batch.drop_column("partition")
