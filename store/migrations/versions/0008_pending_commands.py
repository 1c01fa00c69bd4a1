"""pending commands

Revision 0008: `pending_commands`, each command answered 202 with the workflow run it
went to, its update name and argument, so GET /v1/commands/{id} can send it again to that
run under the same update id when Temporal has dropped it before a worker accepted it.
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
        "pending_commands",
        sa.Column("workflow_id", sa.String(400), primary_key=True),
        sa.Column("update_id", sa.String(400), primary_key=True),
        sa.Column("run_id", sa.String(100), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("argument", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pending_commands_created_at", "pending_commands", ["created_at"])


def downgrade() -> None:
    op.drop_table("pending_commands")
