"""The store's migration runner from before Alembic, kept to carry stores it made.

It recorded its steps (versions 1..8) in `schema_migrations`. A store that has that table
and no Alembic revision gets the steps it lacks, here, and is then stamped at revision
0001, whose schema is what step 8 ends with (store/migrations/baseline.py): nothing is
recreated and no row is touched beyond what the steps always did. New schema changes are
Alembic revisions (store/migrations/versions/), never steps here.

The steps take their tables and column types from the frozen baseline, not from today's
models, so they end at revision 0001's shape whatever later revisions change."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.engine import Connection

from store.migrations.baseline import metadata as baseline

log = logging.getLogger(__name__)

TABLE = "schema_migrations"
# the old runner's own table (kept in stores it made, as the record of their past)
schema_migrations = Table(
    TABLE,
    MetaData(),
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def _create(conn: Connection, *names: str) -> None:
    baseline.create_all(conn, tables=[baseline.tables[name] for name in names], checkfirst=True)


def _initial_schema(conn: Connection) -> None:
    baseline.create_all(conn, checkfirst=True)


def _add_column(conn: Connection, table: str, column: str, ddl_type: str, default: str) -> None:
    existing = {c["name"] for c in inspect(conn).get_columns(table)}
    if column not in existing:
        conn.exec_driver_sql(
            f"ALTER TABLE {table} ADD COLUMN {column} {ddl_type} NOT NULL DEFAULT {default}"
        )


def _sourcing_columns(conn: Connection) -> None:
    _add_column(conn, "locations", "cost_per_shipment", "FLOAT", "0")
    _add_column(conn, "locations", "channels", "JSON", "'[]'")
    _add_column(conn, "locations", "delivery_types", "JSON", "'[]'")
    _create(conn, "inventory_adjustments")


def _routing_fences(conn: Connection) -> None:
    _create(conn, "routing_fences")


def _order_views(conn: Connection) -> None:
    # nullable: rows written before this step have no view until their next projection
    existing = {c["name"] for c in inspect(conn).get_columns("orders")}
    if "view" not in existing:
        conn.exec_driver_sql('ALTER TABLE orders ADD COLUMN "view" TEXT')
    if "view_seq" not in existing:
        conn.exec_driver_sql("ALTER TABLE orders ADD COLUMN view_seq INTEGER")


def _add_missing_columns(conn: Connection, table_name: str, names: Sequence[str]) -> Table:
    """Add the named columns a table lacks, nullable and typed as the baseline declares
    them (a step that runs again, or on a store that has some of them, adds only the rest)."""
    table = baseline.tables[table_name]
    existing = {c["name"] for c in inspect(conn).get_columns(table_name)}
    for name in names:
        if name not in existing:
            ddl = table.c[name].type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {name} {ddl}")
    return table


def _api_key_lifecycle(conn: Connection) -> None:
    from store.database import new_key_id

    # keys from before get an id and the time of this step as created_at (their last
    # characters are not known)
    table = _add_missing_columns(
        conn,
        "api_keys",
        ("key_id", "created_at", "created_by", "last4", "revoked_at", "expires_at", "replaced_by"),
    )
    missing = conn.execute(select(table.c.key_hash).where(table.c.key_id.is_(None))).scalars()
    now = datetime.now(UTC)
    for key_hash in list(missing):
        conn.execute(
            table.update()
            .where(table.c.key_hash == key_hash)
            .values(key_id=new_key_id(), created_at=now)
        )
    for index in table.indexes:
        index.create(conn, checkfirst=True)


def _receiver_secrets(conn: Connection) -> None:
    _create(conn, "receiver_secrets")


def _location_addresses(conn: Connection) -> None:
    # locations from before have no address and take their channel's document kinds
    _add_missing_columns(
        conn,
        "locations",
        ("address_line1", "address_line2", "postal_code", "city", "country", "document_kinds"),
    )


# the columns step 8 widens: order ids and the ids made from them
_WIDENED = {
    "orders": ("order_id", "workflow_id"),
    "order_lines": ("order_id",),
    "order_releases": ("order_id", "release_key"),
    "shipments": ("order_id", "shipment_key", "release_key", "workflow_id"),
    "work_orders": ("order_id", "work_order_id"),
    "approvals": ("order_id",),
    "documents": ("order_id", "document_id"),
    "returns": ("order_id", "return_id"),
    "order_events": ("order_id",),
    "reservations": ("order_id", "reservation_id"),
}


def _channel_order_ids(conn: Connection) -> None:
    # Order ids become `{channel_order_id}@{channel}` (oms/ids.py): longer columns
    # (PostgreSQL checks lengths; SQLite does not), and the channel's own id in a column
    # of its own, unique per channel. Orders from before keep their id, which is also
    # their channel order id.
    if conn.dialect.name == "postgresql":
        for table_name, columns in _WIDENED.items():
            table = baseline.tables[table_name]
            for name in columns:
                ddl = table.c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table_name} ALTER COLUMN {name} TYPE {ddl}")
    table = _add_missing_columns(conn, "orders", ("channel_order_id",))
    conn.execute(
        table.update()
        .where(table.c.channel_order_id.is_(None))
        .values(channel_order_id=table.c.order_id)
    )
    for index in table.indexes:
        if index.name in ("ux_orders_channel_order_id", "ix_orders_channel_order_id"):
            index.create(conn, checkfirst=True)


STEPS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _initial_schema),
    (2, "location sourcing attributes, inventory adjustments", _sourcing_columns),
    (3, "routing fences against stale activity attempts", _routing_fences),
    (4, "order view projection: orders.view and orders.view_seq", _order_views),
    (5, "API key lifecycle: ids, creation, revocation, rotation", _api_key_lifecycle),
    (6, "a secret per receiver of outgoing messages", _receiver_secrets),
    (7, "location postal addresses and document kinds", _location_addresses),
    (8, "order ids unique per sales channel", _channel_order_ids),
]
LAST = STEPS[-1][0]


def is_legacy(conn: Connection) -> bool:
    """The store was made by the old runner (it has its table)."""
    return inspect(conn).has_table(TABLE)


def applied(conn: Connection) -> set[int]:
    return set(conn.execute(select(schema_migrations.c.version)).scalars())


def latest(conn: Connection) -> int:
    """The highest step the old runner recorded (0: none)."""
    return max(applied(conn), default=0)


def run_remaining(conn: Connection) -> list[tuple[int, str]]:
    """Apply the steps the store lacks, recording each as the old runner did."""
    done = applied(conn)
    ran: list[tuple[int, str]] = []
    for version, name, step in STEPS:
        if version in done:
            continue
        step(conn)
        conn.execute(
            schema_migrations.insert().values(
                version=version, name=name, applied_at=datetime.now(UTC)
            )
        )
        log.info("applied store migration %s (from before Alembic): %s", version, name)
        ran.append((version, name))
    return ran


def make(conn: Connection, up_to: int = LAST) -> None:
    """Lay out a store as the old runner left it at step `up_to` (tests and the drift
    check simulate stores from before Alembic with it)."""
    schema_migrations.create(conn, checkfirst=True)
    for version, name, step in STEPS[:up_to]:
        step(conn)
        conn.execute(
            schema_migrations.insert().values(
                version=version, name=name, applied_at=datetime.now(UTC)
            )
        )
