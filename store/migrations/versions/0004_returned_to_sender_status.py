"""room for RETURNED_TO_SENDER

Revision 0004: the status of a release line and of a shipment line may be
RETURNED_TO_SENDER (18 characters; 16 were kept).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("order_releases", "shipments"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "status", existing_type=sa.String(16), type_=sa.String(32), existing_nullable=False
            )


def downgrade() -> None:
    for table in ("order_releases", "shipments"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "status", existing_type=sa.String(32), type_=sa.String(16), existing_nullable=False
            )
