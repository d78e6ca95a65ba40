"""Each webhook endpoint's ordering (`ordered` or `independent`), and a delivery's attempts
since its last redelivery (the retry schedule's count; `attempts` keeps every attempt)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ordering", sa.String(length=16), nullable=False, server_default="ordered")
        )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("round_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    # Until now `attempts` restarted at each redelivery: it is the current round's count.
    op.execute("UPDATE webhook_deliveries SET round_attempts = attempts")


def downgrade() -> None:
    op.execute("UPDATE webhook_deliveries SET attempts = round_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("round_attempts")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("ordering")
