"""The API's two hottest reads on PostgreSQL, through a small asyncpg pool of their own:
the key check every request makes and the stock rows of an availability question.

Through the store's SQLAlchemy engine each of them costs a pool checkout with its ping
(a round trip), a transaction (BEGIN and ROLLBACK, two more) and SQLAlchemy's work per
row: about 0.9 ms for a key and 3 ms for one SKU's 1,000 rows on top of the statements
themselves (0.05 and 1 ms).
Here each is one statement on a pooled connection. The statements only read, so a
connection goes back to the pool as it is (no reset query); one that the server dropped
while it was idle in the pool (a restart, pg_terminate_backend) is replaced and the read
asked once more, as the engine's ping would have done. SQLite has none of these costs:
there the repositories answer (`DirectReads.open` gives None).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import asyncpg
from opentelemetry.trace import SpanKind

from oms import tracing
from store.configuration import Principal, hash_key, key_works
from store.database import Database, utcnow

T = TypeVar("T")

_PRINCIPAL = (
    "SELECT name, role, identity, key_id, revoked_at, expires_at FROM api_keys WHERE key_hash = $1"
)
# one SKU: the rows the answer needs and nothing else (bench.inventory's raw query)
_STOCK_ONE = "SELECT location_id, on_hand, reserved FROM inventory WHERE sku = $1"
_STOCK_MANY = (
    "SELECT sku, location_id, on_hand, reserved FROM inventory WHERE sku = ANY($1::text[])"
)
# an idle connection older than this is closed rather than used (asyncpg's pool: 300 s)
IDLE_SECONDS = 300.0
# URL options SQLAlchemy's asyncpg adapter takes for itself (asyncpg.connect refuses them)
_ENGINE_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")
# what a connection that the server dropped raises on its next statement (the server's
# FATAL message may have arrived while it was idle, or arrives now)
_BROKEN = (
    asyncpg.InterfaceError,  # ConnectionDoesNotExistError among them
    asyncpg.InternalClientError,  # "another operation is in progress": the FATAL's state
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    OSError,
)


class DirectReads:
    """A few asyncpg connections, handed out one per read. Smaller than asyncpg's pool
    on purpose: that one runs every acquire under a timeout and every release as a task
    of its own, two extra turns of the event loop per read."""

    def __init__(
        self,
        params: dict[str, Any],
        *,
        connect_timeout: float,
        command_timeout: float | None,
        pool_timeout: float,
        max_size: int,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._params = params
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool_timeout = pool_timeout
        self._idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[tuple[float, asyncpg.Connection]] = []  # (since, connection)
        self._busy: set[asyncpg.Connection] = set()
        self._closed = False
        # a span per statement when tracing is on, as the engine's instrumentation makes
        self._tracer = tracing.tracer("oms.store.direct")
        self._database = str(params.get("database") or params.get("user") or "")

    @classmethod
    def open(
        cls,
        db: Database,
        *,
        connect_timeout: float,
        command_timeout: float | None,
        pool_timeout: float,
        max_size: int = 10,
    ) -> DirectReads | None:
        """Reads on the store's PostgreSQL server (None for SQLite). Connections are
        opened by the reads that need one, so an API started during an outage starts all
        the same."""
        if db.is_sqlite:
            return None
        engine = db.engine.sync_engine
        # the engine's own reading of its URL (host, port, user, database, ssl ...)
        _, options = engine.dialect.create_connect_args(engine.url)
        params = dict(options)
        cache_size = params.get("prepared_statement_cache_size")
        for option in _ENGINE_ONLY:
            params.pop(option, None)
        if cache_size is not None:  # 0 behind a pooler such as PgBouncer: here too
            params.setdefault("statement_cache_size", int(cache_size))
        return cls(
            params,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            pool_timeout=pool_timeout,
            max_size=max_size,
        )

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in [c for _, c in idle] + list(self._busy):
            conn.terminate()  # the reads are over (the app is shutting down)

    async def _connection(self) -> tuple[asyncpg.Connection, bool]:
        """A connection, and whether it was used before (False: just opened)."""
        now = time.monotonic()
        if self._idle and now - self._idle[0][0] >= self._idle_seconds:
            self._idle.pop(0)[1].terminate()  # the longest idle one, unused for too long
        while self._idle:
            since, conn = self._idle.pop()  # the one used last
            if not conn.is_closed() and now - since < self._idle_seconds:
                return conn, True
            conn.terminate()
        conn = await asyncpg.connect(
            **self._params, timeout=self._connect_timeout, command_timeout=self._command_timeout
        )
        return cast(asyncpg.Connection, conn), False

    async def _statement(
        self, statement: str, run: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        if self._tracer is None:
            return await self._read(run)
        with self._tracer.start_as_current_span(
            f"SELECT {self._database}".strip(),
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": self._database,
                "db.statement": statement,
            },
        ):
            return await self._read(run)

    async def _read(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self._closed:
            raise asyncpg.InterfaceError("the direct reads are closed")
        if self._slots.locked():  # every connection busy: wait a bounded time for one
            async with asyncio.timeout(self._pool_timeout):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            for attempt in (1, 2):
                conn, used_before = await self._connection()
                self._busy.add(conn)
                reusable = False
                try:
                    result = await run(conn)
                    reusable = True
                    return result
                except TimeoutError:  # the statement took too long: no second wait
                    raise
                except _BROKEN:
                    if attempt == 2 or not used_before or self._closed:
                        raise
                    # a connection the server dropped while it was idle here (a restart,
                    # terminated sessions): the others idle beside it likely went too, so
                    # they are closed and the read asked once more on a new connection,
                    # as the engine does on a disconnect (its ping, its pool invalidated)
                    idle, self._idle = self._idle, []
                    for _, other in idle:
                        other.terminate()
                except asyncpg.PostgresError:
                    reusable = True  # the server refused the statement; the session is fine
                    raise
                finally:
                    # one cancelled or timed out midway is still busy cancelling its
                    # statement: closed, never handed to the next read
                    self._busy.discard(conn)
                    if reusable and not self._closed and not conn.is_closed():
                        self._idle.append((time.monotonic(), conn))
                    else:
                        conn.terminate()
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    async def principal(self, key: str) -> Principal | None:
        """As ConfigRepository.principal: the caller of a key that works now (read on
        every request, so a revocation counts at once)."""
        digest = hash_key(key)
        row = await self._statement(_PRINCIPAL, lambda conn: conn.fetchrow(_PRINCIPAL, digest))
        if row is None or not key_works(row["revoked_at"], row["expires_at"], utcnow()):
            return None
        return Principal(row["name"], row["role"], row["identity"], row["key_id"])

    async def stock(self, skus: Sequence[str]) -> Mapping[str, Sequence[Sequence[Any]]]:
        """Each SKU's rows as (location_id, on_hand, reserved), in no particular order; a
        SKU without rows is left out."""
        if len(skus) == 1:  # the common question: no grouping, no sku column
            sku = skus[0]
            rows = await self._statement(_STOCK_ONE, lambda conn: conn.fetch(_STOCK_ONE, sku))
            return {sku: rows} if rows else {}
        many = list(skus)
        found: dict[str, list[tuple[str, int, int]]] = {}
        for sku, location_id, on_hand, reserved in await self._statement(
            _STOCK_MANY, lambda conn: conn.fetch(_STOCK_MANY, many)
        ):
            found.setdefault(sku, []).append((location_id, on_hand, reserved))
        return found
