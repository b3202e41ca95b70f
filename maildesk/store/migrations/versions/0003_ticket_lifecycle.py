"""ticket lifecycle: SLA pauses, reopening, progress reports, escalation, satisfaction, solution

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("pending_since_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("paused_seconds", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_requester_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_progress_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("satisfaction_comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("solution", sa.Text(), nullable=True))
        batch.add_column(sa.Column("kb_candidate", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_tickets_next_progress_at", ["next_progress_at"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_next_progress_at")
        for column in ("kb_candidate", "solution", "rated_at", "satisfaction_comment", "satisfaction",
                       "escalation_level", "next_progress_at", "last_requester_at", "reopened_count",
                       "paused_seconds", "pending_since_at"):
            batch.drop_column(column)
