"""initial schema

Revision 0001, the first: every table as the models declared them when Alembic took over
from the store's own runner (store/migrations/baseline.py, frozen). A store that runner
made is stamped here after its remaining steps, not created again.
"""

from __future__ import annotations

from alembic import op

from store.migrations.baseline import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), checkfirst=False)
