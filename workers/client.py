"""Temporal client set-up shared by the worker, the API and the launcher, and the waiting
for dependencies that a process started during an outage does instead of exiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from oms import tracing
from store import Store
from store.database import Database
from workers.settings import Settings

log = logging.getLogger("oms.connect")
T = TypeVar("T")

FIRST_BACKOFF_SECONDS = 1.0
# the API's calls give up on an unavailable Temporal within ~3 s (the SDK's default
# retries for 10 s), so it answers 503 instead of holding the request
API_RETRY = RetryConfig(max_interval_millis=1000, max_elapsed_time_millis=3000, max_retries=5)


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    for_api: bool = False,
    runtime: Runtime | None = None,
) -> Client:
    """A client for the settings' namespace. `lazy` connects on first use (each call
    fails fast while Temporal is unreachable, and works once it is back); `for_api`
    retries an unavailable Temporal for a short while only. `runtime`: the SDK runtime
    (the worker's exports its metrics); None is the SDK's default. With tracing on
    (oms/tracing.py) the client, and the workers built on it, carry the SDK's tracing
    interceptor."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
        retry_config=API_RETRY if for_api else None,
        runtime=runtime,
        interceptors=tracing.client_interceptors(),
    )


class Stopped(Exception):
    """The process was asked to stop while it waited for a dependency."""


async def with_backoff(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    max_delay: float,
    stop: asyncio.Event | None = None,
) -> T:
    """Run `attempt` until it succeeds, waiting 1 s, 2 s, 4 s ... up to `max_delay`
    between tries and logging what the process waits for. Raises Stopped if `stop` is
    set meanwhile. Programming errors (TypeError, ValueError ...) are not retried."""
    delay = FIRST_BACKOFF_SECONDS
    tries = 0
    while True:
        tries += 1
        try:
            result = await attempt()
        except (TypeError, ValueError, AttributeError, NameError, ImportError):
            raise
        except Exception as err:  # unreachable, refused, timed out, not accepting yet
            log.warning(
                "waiting for %s (attempt %d failed: %s: %s); next try in %.0f s",
                what,
                tries,
                type(err).__name__,
                str(err).splitlines()[0][:300] if str(err) else "",
                delay,
            )
        else:
            if tries > 1:
                log.info("%s reachable after %d attempts", what, tries)
            return result
        if stop is None:
            await asyncio.sleep(delay)
        else:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            else:
                raise Stopped(what)
        delay = min(delay * 2, max_delay)


async def connect_with_retry(
    settings: Settings, stop: asyncio.Event | None = None, *, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal, waiting (with backoff) while it is unreachable."""
    return await with_backoff(
        f"Temporal at {settings.temporal_address}",
        lambda: connect(settings, runtime=runtime),
        max_delay=settings.connect_backoff_max_seconds,
        stop=stop,
    )


async def open_store_with_retry(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    connect_timeout: float = 10.0,
    command_timeout: float | None = None,
    pool_timeout: float = 30.0,
) -> Store:
    """Open the store (and bring its schema to this release's revision unless
    OMS_MIGRATE_ON_START=0), waiting while it is unreachable. The timeouts are for the
    store returned; migrations run without a command timeout (a schema change on a large
    table may take longer than any request should)."""
    url = settings.resolved_database_url()

    async def migrate() -> None:
        migrator = Database(url, connect_timeout=connect_timeout)
        try:
            if settings.migrates_on_start:
                await migrator.migrate()
                return
            schema = await migrator.schema_state()
            if schema.behind:
                log.warning(
                    "store schema at %s, this release needs revision %s; not migrating "
                    "(OMS_MIGRATE_ON_START=0): run `oms db upgrade`",
                    schema.describe(),
                    schema.head,
                )
        finally:
            await migrator.dispose()

    await with_backoff(
        "the store", migrate, max_delay=settings.connect_backoff_max_seconds, stop=stop
    )
    return Store(
        Database(
            url,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            pool_timeout=pool_timeout,
        )
    )
