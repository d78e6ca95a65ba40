"""Where each purge item's files were deleted (`local` or `s3://bucket/prefix`) and how many
stored object versions, delete markers included, that removed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-15 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purge_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_from", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("versions_deleted", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purge_items", schema=None) as batch_op:
        batch_op.drop_column("versions_deleted")
        batch_op.drop_column("deleted_from")
