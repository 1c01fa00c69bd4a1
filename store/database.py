"""Engine, sessions and schema migrations for the store (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from oms import tracing
from store.tables import Base, SchemaMigration

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Ordered schema migrations. Each runs once, inside one transaction, and is recorded
# in schema_migrations; add new steps at the end, never edit an applied one. Steps
# check what exists, because step 1 creates today's tables on a fresh database.
def _initial_schema(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=list(Base.metadata.sorted_tables))


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
    Base.metadata.create_all(conn, tables=[Base.metadata.tables["inventory_adjustments"]])


def _routing_fences(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[Base.metadata.tables["routing_fences"]])


def _order_views(conn: Connection) -> None:
    # nullable: rows written before this step have no view until their next projection
    existing = {c["name"] for c in inspect(conn).get_columns("orders")}
    if "view" not in existing:
        conn.exec_driver_sql('ALTER TABLE orders ADD COLUMN "view" TEXT')
    if "view_seq" not in existing:
        conn.exec_driver_sql("ALTER TABLE orders ADD COLUMN view_seq INTEGER")


def _add_missing_columns(conn: Connection, table_name: str, names: Sequence[str]) -> Table:
    """Add the named columns a table lacks, nullable and typed as the model declares them
    (a step that runs again, or on a store that has some of them, adds only the rest)."""
    table = Base.metadata.tables[table_name]
    existing = {c["name"] for c in inspect(conn).get_columns(table_name)}
    for name in names:
        if name not in existing:
            ddl = table.c[name].type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {name} {ddl}")
    return table


def _api_key_lifecycle(conn: Connection) -> None:
    # nullable columns, typed as the table declares them; keys from before get an id and
    # the time of this step as created_at (their last characters are not known)
    table = _add_missing_columns(
        conn,
        "api_keys",
        ("key_id", "created_at", "created_by", "last4", "revoked_at", "expires_at", "replaced_by"),
    )
    missing = conn.execute(select(table.c.key_hash).where(table.c.key_id.is_(None))).scalars()
    now = utcnow()
    for key_hash in list(missing):
        conn.execute(
            table.update()
            .where(table.c.key_hash == key_hash)
            .values(key_id=new_key_id(), created_at=now)
        )
    for index in table.indexes:
        index.create(conn, checkfirst=True)


def _receiver_secrets(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[Base.metadata.tables["receiver_secrets"]])


def _location_addresses(conn: Connection) -> None:
    # nullable columns, typed as the table declares them: locations from before have no
    # address and take their channel's document kinds
    _add_missing_columns(
        conn,
        "locations",
        ("address_line1", "address_line2", "postal_code", "city", "country", "document_kinds"),
    )


# the columns migration 8 widens: order ids and the ids made from them
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
            table = Base.metadata.tables[table_name]
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


def new_key_id() -> str:
    """The public id of an API key (random: it says nothing about the key)."""
    return "key_" + secrets.token_hex(8)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _initial_schema),
    (2, "location sourcing attributes, inventory adjustments", _sourcing_columns),
    (3, "routing fences against stale activity attempts", _routing_fences),
    (4, "order view projection: orders.view and orders.view_seq", _order_views),
    (5, "API key lifecycle: ids, creation, revocation, rotation", _api_key_lifecycle),
    (6, "a secret per receiver of outgoing messages", _receiver_secrets),
    (7, "location postal addresses and document kinds", _location_addresses),
    (8, "order ids unique per sales channel", _channel_order_ids),
]


class Database:
    """One engine and session factory; the repositories take it."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        connect_timeout: float = 10.0,
        command_timeout: float | None = None,
        pool_timeout: float = 30.0,
    ) -> None:
        """`connect_timeout` bounds opening a PostgreSQL connection, `command_timeout` each
        statement (None: unbounded) and `pool_timeout` the wait for a pooled connection;
        the API passes short ones so an unreachable store is an answer, not a hang."""
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60}
        else:
            connect_args: dict[str, Any] = {"timeout": connect_timeout}
            if command_timeout is not None:
                connect_args["command_timeout"] = command_timeout
            kwargs.update(
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                pool_timeout=pool_timeout,
                connect_args=connect_args,
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        tracing.instrument_engine(self.engine)  # a span per statement when tracing is on
        if self.is_sqlite:
            self._configure_sqlite()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def _configure_sqlite(self) -> None:
        # SQLite allows one writer. Deferred transactions that read and then write can
        # fail with "database is locked" without waiting; BEGIN IMMEDIATE takes the write
        # lock up front so concurrent writers queue on the busy timeout instead.
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def insert(self, table: Table | Any) -> Any:
        """A dialect-specific INSERT that supports ON CONFLICT."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self) -> list[int]:
        """Apply pending migrations; safe to call from several processes at start."""
        applied: list[int] = []
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # one migrator at a time across processes
                await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(734001)")
            await conn.run_sync(
                lambda c: SchemaMigration.__table__.create(c, checkfirst=True)  # type: ignore[attr-defined]
            )
            done = set((await conn.execute(select(SchemaMigration.version))).scalars())
            for version, name, step in MIGRATIONS:
                if version in done:
                    continue
                await conn.run_sync(step)
                await conn.execute(
                    SchemaMigration.__table__.insert().values(  # type: ignore[attr-defined]
                        version=version, name=name, applied_at=utcnow()
                    )
                )
                log.info("applied store migration %s: %s", version, name)
                applied.append(version)
        return applied

    async def dispose(self) -> None:
        await self.engine.dispose()
