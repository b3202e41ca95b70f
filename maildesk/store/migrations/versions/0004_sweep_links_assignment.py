"""sweep index, ticket links (merge, follow-up of a closed ticket), round-robin state

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("follows_id", sa.Integer(), nullable=True))
        batch.create_index("ix_tickets_next_due_at", ["next_due_at"])
        batch.create_foreign_key("fk_tickets_merged_into", "tickets", ["merged_into_id"], ["id"])
        batch.create_foreign_key("fk_tickets_follows", "tickets", ["follows_id"], ["id"])
    op.create_table(
        "assignment_state",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("last_agent", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("group_id"),
    )


def downgrade() -> None:
    op.drop_table("assignment_state")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_follows", type_="foreignkey")
        batch.drop_constraint("fk_tickets_merged_into", type_="foreignkey")
        batch.drop_index("ix_tickets_next_due_at")
        for column in ("follows_id", "merged_into_id", "next_due_at"):
            batch.drop_column(column)
