"""work order kinds

Revision 0005: a work order's kind (NULL: PACKAGING, an order's release to a location)
and, for RETURN_TO_VENDOR work orders made from returns, the return, its units and its
shipment to the vendor.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("kind", sa.String(32)),
    ("return_id", sa.String(400)),
    ("items", sa.JSON()),
    ("carrier", sa.String(64)),
    ("tracking_number", sa.String(128)),
    ("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
