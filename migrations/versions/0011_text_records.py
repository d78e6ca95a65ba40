"""Text records for language models: a dataset's record kind, and a record's prompt and
completion

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-15 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_kind", sa.String(length=16), nullable=True))
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("completion", sa.Text(), nullable=True))
    # Every dataset with records so far holds tabular ones.
    op.execute("UPDATE datasets SET record_kind = 'tabular' WHERE feature_count IS NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM training_records WHERE completion IS NOT NULL")
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.drop_column("completion")
        batch_op.drop_column("prompt")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("record_kind")
