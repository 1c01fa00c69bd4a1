"""Engine, sessions and schema migrations for the store (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar, copy_context
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from oms import tracing
from store import migrations

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


# the PostgreSQL advisory lock migrators take turns under
MIGRATION_LOCK = 734001


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_key_id() -> str:
    """The public id of an API key (random: it says nothing about the key)."""
    return "key_" + secrets.token_hex(8)


T = TypeVar("T")
# SQLite: threads (and connections) of a process's reads through Database.read
READER_THREADS = 4


def _configure_sqlite(sync_engine: Engine) -> None:
    # SQLite allows one writer. Deferred transactions that read and then write can
    # fail with "database is locked" without waiting; BEGIN IMMEDIATE takes the write
    # lock up front so concurrent writers queue on the busy timeout instead.

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
        # a read takes no lock: with BEGIN IMMEDIATE every read (a key's check, an
        # order's view) queued behind the worker's writes on the busy timeout
        read = conn.get_execution_options().get("oms_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


# this task holds its process's SQLite write turn
_WRITING: ContextVar[bool] = ContextVar("oms_sqlite_writing", default=False)


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
        tracing.instrument_engine(self.engine.sync_engine)  # a span per statement when on
        # SQLite: the engine of the writer thread (write()), made when first used
        self._thread_engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        # SQLite: the engine and threads of read() (made when first used)
        self._read_engine: Engine | None = None
        self._readers: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine)
        # `sessions()` reads (on SQLite a deferred transaction: WAL readers never wait
        # for the writer); `transaction()` writes
        self.sessions = async_sessionmaker(
            self.engine.execution_options(oms_read=True), expire_on_commit=False
        )
        self._writes = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: this process's writers take turns here rather than on the database's
        # busy timeout, whose waits back off up to 100 ms while the lock is long free
        self._write_turn = asyncio.Lock()

    def insert(self, table: Table | Any) -> Any:
        """A dialect-specific INSERT that supports ON CONFLICT."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    async def write(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one write transaction, its result. On SQLite the whole
        transaction runs in this process's writer thread on a synchronous connection:
        SQLite's one write lock is held for the statements alone, not for a trip through
        the event loop after each of them (a busy worker's loop made a five-statement
        write hold it ~20 ms). On PostgreSQL it runs through the async session."""
        if not self._threaded():
            async with self.transaction() as session:
                return await session.run_sync(work)
        if _WRITING.get():  # already inside this process's write turn
            return await self._in_writer_thread(work)
        async with self._write_turn:
            return await self._in_writer_thread(work)

    async def read(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one read transaction, its result. On SQLite in one of this
        process's reader threads on a synchronous connection: one trip from the event loop
        for the whole read instead of several per statement through aiosqlite (an API
        key's check 1.1 -> 0.55 ms). PostgreSQL runs it through the async session."""
        if not self._threaded():
            async with self.sessions() as session:
                return await session.run_sync(work)
        if self._readers is None:
            self._read_engine = create_engine(
                make_url(self.url).set(drivername="sqlite"),
                connect_args={"timeout": 60},
                pool_size=READER_THREADS,
            )
            tracing.instrument_engine(self._read_engine)
            _configure_sqlite(self._read_engine)
            self._readers = ThreadPoolExecutor(
                READER_THREADS, thread_name_prefix="oms-sqlite-reader"
            )
        engine = self._read_engine
        assert engine is not None

        def read_now() -> T:
            with (
                Session(engine.execution_options(oms_read=True), expire_on_commit=False) as session,
                session.begin(),
            ):
                return work(session)

        # in this task's context: the statements' spans belong to the caller's trace
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, copy_context().run, read_now
        )

    def _threaded(self) -> bool:
        """SQLite on a file: reads and writes go through threads of this process."""
        return self.is_sqlite and make_url(self.url).database not in (None, "", ":memory:")

    async def _in_writer_thread(self, work: Callable[[Session], T]) -> T:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="oms-sqlite-writer")
        done = asyncio.get_running_loop().run_in_executor(
            self._writer, copy_context().run, self._write_now, work
        )
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # the thread finishes the transaction: the turn is kept until it has
            await asyncio.wait([done])
            raise

    def _write_now(self, work: Callable[[Session], T]) -> T:
        if self._thread_engine is None:
            self._thread_engine = create_engine(
                make_url(self.url).set(drivername="sqlite"), connect_args={"timeout": 60}
            )
            tracing.instrument_engine(self._thread_engine)
            _configure_sqlite(self._thread_engine)
        with Session(self._thread_engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        if not self.is_sqlite or _WRITING.get():
            async with self._writes() as session, session.begin():
                yield session
            return
        async with self._write_turn:
            token = _WRITING.set(True)
            try:
                async with self._writes() as session, session.begin():
                    yield session
            finally:
                _WRITING.reset(token)

    async def migrate(self) -> migrations.Upgrade:
        """Bring the schema to this release's Alembic head (store/migrations), carrying a
        store from before Alembic over first; safe to call from several processes at once:
        on PostgreSQL they take turns under an advisory lock, on SQLite the write lock."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # one migrator at a time across processes (released at commit)
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            return await conn.run_sync(migrations.upgrade)

    async def schema_state(self) -> migrations.SchemaState:
        """Where the schema is against this release's revisions (nothing is changed)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(migrations.state)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.get_running_loop().run_in_executor(writer, self._dispose_thread_engine)
            writer.shutdown(wait=False)

        if self._readers is not None:
            readers, self._readers = self._readers, None
            # reads not begun are dropped, those under way finish before the engine goes
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(readers.shutdown, wait=True, cancel_futures=True)
            )
            if self._read_engine is not None:
                self._read_engine.dispose()
                self._read_engine = None

    def _dispose_thread_engine(self) -> None:
        if self._thread_engine is not None:
            self._thread_engine.dispose()
            self._thread_engine = None
