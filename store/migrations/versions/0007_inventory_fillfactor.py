"""inventory fillfactor

Revision 0007 (PostgreSQL only): the inventory table's pages are filled to 70 % when rows
are written, so a stock level or a reservation that changes writes its new row version on
the same page and no new index entry (a HOT update). A stock feed that changes many levels
at once ran about three times as fast on a table with room on its pages (README,
Performance). Pages written before this keep no room until the table is rewritten
(`VACUUM FULL inventory`, see the runbook); SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE inventory SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inventory RESET (fillfactor)")
