"""Durable purge: the items an erasure must delete, confirmed one by one; when a request's rows
were purged

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purge_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("purge_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purge_items_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purge_items_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purge_items_request_id"), ["request_id"], unique=False)
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.drop_column("data_purged_at")
    with op.batch_alter_table("purge_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purge_items_request_id"))
        batch_op.drop_index(batch_op.f("ix_purge_items_job_id"))
        batch_op.drop_index(batch_op.f("ix_purge_items_model_id"))
    op.drop_table("purge_items")
