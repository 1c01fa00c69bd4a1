"""The API's dependencies (store, Temporal, workers polling the task queue): which
failures are outages, the checks behind `/ready`, and the worker check before commands.

An outage is answered 503 with a code saying which dependency is missing
(`store_unavailable`, `temporal_unavailable`, `no_worker`) and a `Retry-After`, within a
bounded time; errors that are not about reaching a dependency (an IntegrityError, a
programming error) are not outages and stay what they are."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from sqlalchemy import exc as sa_exc
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client, RPCError
from temporalio.service import RPCStatusCode

from store import Store, migrations

T = TypeVar("T")

STORE_UNAVAILABLE = "store_unavailable"
TEMPORAL_UNAVAILABLE = "temporal_unavailable"
NO_WORKER = "no_worker"
# seconds a client should wait before retrying, per outage
RETRY_AFTER = {STORE_UNAVAILABLE: 5, TEMPORAL_UNAVAILABLE: 5, NO_WORKER: 10}

# the API's short store timeouts (PostgreSQL; SQLite is a local file)
STORE_CONNECT_SECONDS = 3.0
STORE_COMMAND_SECONDS = 5.0
STORE_POOL_SECONDS = 3.0
# one check of /ready or of the worker pollers
CHECK_SECONDS = 2.0
# a worker check is reused this long (every command asks)
WORKER_CHECK_TTL_SECONDS = 3.0
# Temporal lists a poller for minutes after it stopped; a live idle worker starts a new
# long poll (up to ~70 s) as soon as the last one ends, so one not seen for this long is gone
POLLER_FRESH_SECONDS = 120.0

# asyncpg errors that mean the connection to the server is gone or refused
_PG_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # 57P03
    asyncpg.AdminShutdownError,  # 57P01: pg_terminate_backend, shutdown
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,  # the database does not exist (any more)
)
_SQLITE_OUTAGE = ("database is locked", "unable to open database", "disk i/o error")


class DependencyUnavailable(Exception):
    """A dependency the request needs is unreachable: answered 503 with Retry-After."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retry_after(self) -> int:
        return RETRY_AFTER.get(self.code, 5)


def _chain(err: BaseException) -> list[BaseException]:
    """The error, what SQLAlchemy wrapped (`orig`) and its causes, each once."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [err]
    while pending and len(seen) < 12:
        item = pending.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        orig = getattr(item, "orig", None)
        pending.extend(
            [item.__context__, item.__cause__, orig if isinstance(orig, BaseException) else None]
        )
    return seen


def is_store_outage(err: BaseException) -> bool:
    """True for failures to reach the store: refused or lost connections, timeouts, a
    database not accepting connections. False for what a query itself did wrong."""
    if isinstance(err, sa_exc.IntegrityError):
        return False
    if isinstance(err, sa_exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    for item in _chain(err):
        if isinstance(item, _PG_CONNECTION_ERRORS):
            return True
        if isinstance(item, asyncpg.ObjectNotInPrerequisiteStateError):
            # ALLOW_CONNECTIONS false: "database ... is not currently accepting connections"
            if "accepting connections" in str(item):
                return True
        if isinstance(item, sqlite3.OperationalError):
            if any(s in str(item).lower() for s in _SQLITE_OUTAGE):
                return True
        if isinstance(item, (OSError, TimeoutError)):  # refused, reset, unreachable, slow
            return True
    return False


def is_temporal_outage(err: BaseException) -> bool:
    """True for failures to reach Temporal (refused, unavailable, deadline exceeded, a
    lazy client that could not connect yet)."""
    for item in _chain(err):
        if isinstance(item, RPCError) and item.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
        ):
            return True
        if isinstance(item, RuntimeError) and str(item).startswith("Failed client connect"):
            return True
    return False


def as_unavailable(err: BaseException) -> DependencyUnavailable | None:
    """The 503 an error means, or None when it is not an outage."""
    if isinstance(err, DependencyUnavailable):
        return err
    if is_temporal_outage(err):
        return DependencyUnavailable(
            TEMPORAL_UNAVAILABLE, f"Temporal is unreachable ({type(err).__name__})"
        )
    if isinstance(err, sa_exc.SQLAlchemyError | OSError | TimeoutError | asyncpg.PostgresError):
        if is_store_outage(err):
            return DependencyUnavailable(
                STORE_UNAVAILABLE, f"the store is unreachable ({type(err).__name__})"
            )
    return None


async def bounded(awaitable: Awaitable[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


# -- the checks ---------------------------------------------------------------------------

# the store's Alembic revision this code needs (store/migrations/versions/)
HEAD_REVISION = migrations.head()


class SchemaBehind(Exception):
    """The store's schema lacks revisions this code needs (a deploy that has not
    migrated yet): requests touching the new columns would fail."""


async def check_store(store: Store) -> None:
    """The store answers and its schema is at this release's revision, or at a newer
    release's (whose revisions only add to it)."""
    schema = await bounded(store.db.schema_state(), CHECK_SECONDS)
    if schema.behind:
        raise SchemaBehind(
            f"store schema at {schema.describe()}, this API needs revision {schema.head}: run "
            "`oms db upgrade` or start a worker or API of this release (they migrate at start "
            "unless OMS_MIGRATE_ON_START=0)"
        )


async def check_temporal(client: Client) -> None:
    await client.workflow_service.get_system_info(
        GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_SECONDS)
    )


async def count_pollers(client: Client, task_queue: str) -> int:
    """Workers polling the task queue for workflow tasks, seen recently."""
    answer = await bounded(
        client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=CHECK_SECONDS),
        ),
        CHECK_SECONDS + 0.5,
    )
    now = time.time()
    return sum(
        1
        for poller in answer.pollers
        if not poller.HasField("last_access_time")
        or now - poller.last_access_time.ToSeconds() < POLLER_FRESH_SECONDS
    )


@dataclass
class _Seen:
    at: float
    pollers: int | None  # None: Temporal unreachable
    error: str


class WorkerCheck:
    """Cached answer to "does some worker poll the task queue?" (a few seconds when
    yes; a no is asked again on the next command)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], _Seen] = {}

    async def require(self, client: Client, task_queue: str) -> None:
        key = (id(client), task_queue)
        seen = self._seen.get(key)
        now = time.monotonic()
        if seen is None or now - seen.at > WORKER_CHECK_TTL_SECONDS:
            try:
                seen = _Seen(now, await count_pollers(client, task_queue), "")
            except Exception as err:
                if not (is_temporal_outage(err) or isinstance(err, TimeoutError | RPCError)):
                    raise
                seen = _Seen(now, None, str(err) or type(err).__name__)
            if seen.pollers:
                self._seen[key] = seen  # only a worker seen is reused: one starting counts
            else:
                self._seen.pop(key, None)
        if seen.pollers is None:
            raise DependencyUnavailable(
                TEMPORAL_UNAVAILABLE, f"Temporal is unreachable: {seen.error}"
            )
        if seen.pollers == 0:
            raise DependencyUnavailable(
                NO_WORKER,
                f"no worker polls task queue {task_queue}; the command was not sent",
            )


WORKER_CHECK = web.AppKey("worker_check", WorkerCheck)


async def readiness(store: Store, client: Client, task_queue: str) -> tuple[bool, dict[str, Any]]:
    """/ready: each dependency checked with a short timeout, concurrently."""

    async def run(check: Awaitable[Any]) -> tuple[Any, str | None]:
        try:
            return await bounded(check, CHECK_SECONDS + 1), None
        except Exception as err:
            return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    (_, store_error), (_, temporal_error), (pollers, workers_error) = await asyncio.gather(
        run(check_store(store)),
        run(check_temporal(client)),
        run(count_pollers(client, task_queue)),
    )
    checks: dict[str, Any] = {
        "store": {"status": "failing" if store_error else "ok", "error": store_error},
        "temporal": {"status": "failing" if temporal_error else "ok", "error": temporal_error},
    }
    if workers_error is not None:
        checks["workers"] = {"status": "failing", "pollers": None, "error": workers_error}
    elif pollers == 0:
        checks["workers"] = {
            "status": "failing",
            "pollers": 0,
            "error": f"no worker polls task queue {task_queue}",
        }
    else:
        checks["workers"] = {"status": "ok", "pollers": pollers, "error": None}
    ready = all(check["status"] == "ok" for check in checks.values())
    return ready, checks
