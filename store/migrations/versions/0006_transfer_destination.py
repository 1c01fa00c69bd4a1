"""transfer destination

Revision 0006: the location a TRANSFER work order ships to (click and collect from another
location: the pickup store); NULL for every other kind.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("destination_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("destination_id")
