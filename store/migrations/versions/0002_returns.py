"""returns of delivered units

Revision 0002: a return's receiving location, reason code, deadline, what was received
and the refund (columns of `returns`, nullable: CANCEL returns from before have none),
and `return_dispositions`, the ledger of returned units (restocked, discarded, back to
the vendor).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("returns") as batch:
        batch.add_column(sa.Column("sales_channel", sa.String(64), nullable=True))
        batch.add_column(sa.Column("location_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reason_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("workflow_id", sa.String(400), nullable=True))
        batch.add_column(sa.Column("expires_at", _AT, nullable=True))
        batch.add_column(sa.Column("received", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("refund_amount", sa.Numeric(14, 2), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(3), nullable=True))
        batch.add_column(sa.Column("updated_at", _AT, nullable=True))
    op.create_table(
        "return_dispositions",
        sa.Column("return_id", sa.String(400), primary_key=True),
        sa.Column("line_id", sa.String(64), primary_key=True),
        sa.Column("disposition", sa.String(32), primary_key=True),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("condition", sa.String(32), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
    )
    op.create_index("ix_return_dispositions_order_id", "return_dispositions", ["order_id"])
    op.create_index("ix_return_dispositions_location_id", "return_dispositions", ["location_id"])


def downgrade() -> None:
    op.drop_table("return_dispositions")
    with op.batch_alter_table("returns") as batch:
        for name in (
            "updated_at",
            "currency",
            "refund_amount",
            "received",
            "expires_at",
            "workflow_id",
            "reason_code",
            "location_id",
            "sales_channel",
        ):
            batch.drop_column(name)
