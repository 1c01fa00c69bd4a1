"""Alembic's environment for the store: it runs on the connection store/migrations hands
it (Database.migrate, `oms db ...`), inside that connection's transaction and lock."""

from __future__ import annotations

from alembic import context

from store.migrations import context_options
from store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the store's migrations run through the OMS (`oms db upgrade`, or a worker or API "
        "at start), which passes Alembic its connection; there is no alembic.ini"
    )
context.configure(
    connection=connection, target_metadata=Base.metadata, **context_options(connection)
)
with context.begin_transaction():
    context.run_migrations()
