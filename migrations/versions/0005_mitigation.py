"""Mitigation: when a request was mitigated, what closes a model's erasures, and one pending
mitigation job per model

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ONE_PENDING_MITIGATION = "status = 'pending' AND kind = 'mitigate'"


def upgrade() -> None:
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mitigated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("exact_expected_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("finalize", sa.String(length=20), nullable=False, server_default="exact")
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_jobs_one_pending_mitigate_per_model",
            ["model_id"],
            unique=True,
            postgresql_where=sa.text(ONE_PENDING_MITIGATION),
            sqlite_where=sa.text(ONE_PENDING_MITIGATION),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_jobs_one_pending_mitigate_per_model",
            postgresql_where=sa.text(ONE_PENDING_MITIGATION),
            sqlite_where=sa.text(ONE_PENDING_MITIGATION),
        )
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.drop_column("finalize")
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.drop_column("exact_expected_at")
        batch_op.drop_column("mitigated_at")
