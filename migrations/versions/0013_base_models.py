"""Pretrained language models registered as bases, and a causal language model's base

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-20 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "base_models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_type", sa.String(length=50), nullable=False),
        sa.Column("parameters", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_model_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_ml_models_base_model_id",
            "base_models",
            ["base_model_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ml_models_base_model_id", type_="foreignkey")
        batch_op.drop_column("base_model_id")
    op.drop_table("base_models")
