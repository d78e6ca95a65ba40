"""Suppression list: identities erased on request (type and keyed hash only), and the clients
that stated a lawful basis to process one again

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash", "type", name="uq_suppressions_hash_type"),
    )
    op.create_table(
        "suppression_overrides",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("suppression_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("basis", sa.String(length=30), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["suppression_id"], ["suppressions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["api_clients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "suppression_id", "client_id", name="uq_suppression_overrides_suppression_client"
        ),
    )


def downgrade() -> None:
    op.drop_table("suppression_overrides")
    op.drop_table("suppressions")
