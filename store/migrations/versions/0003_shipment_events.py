"""shipment tracking events

Revision 0003: `shipment_events`, each carrier or location tracking event of a shipment
once per event id, with when it happened.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shipment_events",
        sa.Column("shipment_key", sa.String(400), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("place", sa.String(200), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("received_at", _AT, nullable=False),
    )
    op.create_index("ix_shipment_events_order_id", "shipment_events", ["order_id"])


def downgrade() -> None:
    op.drop_table("shipment_events")
