"""A request's attempt number, the attempt each job serves, and the client that owns a job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("job_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE jobs SET client_id = "
        "(SELECT ml_models.client_id FROM ml_models WHERE ml_models.id = jobs.model_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("client_id")
    with op.batch_alter_table("job_requests", schema=None) as batch_op:
        batch_op.drop_column("attempt")
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.drop_column("attempt")
