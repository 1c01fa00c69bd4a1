"""The aiohttp application: `init_app()` wires store, Temporal client and routes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from temporalio.client import Client

from api import (
    commands,
    configuration,
    docs,
    fulfillment,
    keys,
    orders,
    query,
    reports,
    returns,
    tracking,
    ui,
    work_orders,
)
from api.auth import auth_middleware
from api.config_cache import CONFIG_CACHE, ConfigCache
from api.context import DIRECT_READS, SETTINGS, STORE, TEMPORAL
from api.dependencies import (
    STORE_COMMAND_SECONDS,
    STORE_CONNECT_SECONDS,
    STORE_POOL_SECONDS,
    WORKER_CHECK,
    WorkerCheck,
    check_temporal,
    readiness,
)
from api.errors import Handler, error_middleware
from api.metrics import METRICS, ApiMetrics, exposition, metrics_middleware
from api.openapi import openapi_document
from oms import tracing
from store import Store
from store.direct import DirectReads
from workers.client import connect, open_store_with_retry, with_backoff
from workers.seed import API_KEYS as DEMO_API_KEYS
from workers.settings import Settings

log = logging.getLogger("oms.api")

ROUTE_TABLES = (
    orders.routes,
    fulfillment.routes,
    configuration.routes,
    keys.routes,
    commands.routes,
    returns.routes,
    reports.routes,
    tracking.routes,
    work_orders.routes,
)
# answered without an API key (like /health, /openapi.json and /metrics)
OPEN_PATHS = {"/ready"}


@web.middleware
async def open_paths_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Public probes skip the key check (which needs the store they report on)."""
    if request.path in OPEN_PATHS and request.match_info.http_exception is None:
        return await request.match_info.handler(request)
    return await handler(request)


@web.middleware
async def input_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Query values and path parameters a database cannot compare (NUL and other control
    characters, unpaired surrogates) are a 400 before any handler reads them."""
    query.check_values(request)
    return await handler(request)


async def no_server_banner(request: web.Request, response: web.StreamResponse) -> None:
    """No answer names the server software (aiohttp adds `Server: Python/... aiohttp/...`)."""
    response.headers.popall("Server", None)


async def health(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs (dependencies are /ready's business)."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the store, Temporal and the workers polling the task queue."""
    ok, checks = await readiness(
        request.app[STORE], request.app[TEMPORAL], request.app[SETTINGS].task_queue
    )
    response = web.json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )
    if not ok:
        response.headers["Retry-After"] = "5"
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(ROUTE_TABLES))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (api/metrics.py): requests by route, and business gauges."""
    return await exposition(request.app[METRICS], request.app[STORE])


async def freeze_heap(app: web.Application) -> None:
    """What is alive once the app has started (modules, routes, the store's engine, the
    clients) is kept out of the garbage collector's way from then on: a full collection
    walks only what came after (a few ms) instead of every object of the process (about
    100 ms on a small machine: the pauses behind availability's p99 of 127 ms). Thawed at
    cleanup, so a process that runs several apps one after another (the tests) can free
    what each left."""
    gc.freeze()


async def thaw_heap(app: web.Application) -> None:
    gc.unfreeze()


class StartupRefused(Exception):
    """The API must not serve with this store and these settings (production mode)."""


async def bootstrap_keys(store: Store, settings: Settings) -> None:
    """Make sure the bootstrap admin key exists; in production, refuse to serve without
    an admin key that works or with the demo keys of `make dev` still working."""
    if settings.bootstrap_admin_key:
        entry = await store.config.upsert_api_key(
            settings.bootstrap_admin_key, name="bootstrap admin", role="admin", identity="admin"
        )
        if entry["revoked_at"] is not None:
            log.warning("OMS_BOOTSTRAP_ADMIN_KEY was revoked (%s); it stays revoked", entry["id"])
    if not settings.production:
        return
    if not await store.config.active_admin_keys():
        raise StartupRefused(
            "OMS_BOOTSTRAP_ADMIN_KEY is not set and the store has no admin API key that works: "
            "set it (generate one with `openssl rand -hex 32`) for the first start"
        )
    demo = await store.config.active_keys_among([key for key, *_ in DEMO_API_KEYS])
    if demo:
        raise StartupRefused(
            f"the store holds the demo API keys of `make dev` ({', '.join(demo)}): revoke "
            "them (POST /v1/api-keys/{id}/revoke) in development mode, or use a fresh store"
        )


def init_app(
    settings: Settings, *, store: Store | None = None, client: Client | None = None
) -> web.Application:
    """Build the app. Store and client are opened here unless given (tests share theirs)."""
    app = web.Application(
        middlewares=[
            *tracing.api_middlewares(),
            metrics_middleware,
            error_middleware,
            input_middleware,
            open_paths_middleware,
            auth_middleware,
        ],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[METRICS] = ApiMetrics()
    app[WORKER_CHECK] = WorkerCheck()
    app[CONFIG_CACHE] = ConfigCache(settings.config_cache_seconds)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # Started during an outage the API waits for the store (with backoff, logging)
        # instead of exiting; Temporal is connected lazily, so until it is reachable the
        # API answers 503 temporal_unavailable and /ready says why.
        owned: list[Any] = []
        background: list[asyncio.Task[Any]] = []
        if store is None:
            opened = await open_store_with_retry(
                settings,
                connect_timeout=STORE_CONNECT_SECONDS,
                command_timeout=STORE_COMMAND_SECONDS,
                pool_timeout=STORE_POOL_SECONDS,
            )
            owned.append(opened)
            app[STORE] = opened
        else:
            app[STORE] = store
        try:
            await bootstrap_keys(app[STORE], settings)
            direct = DirectReads.open(
                app[STORE].db,
                connect_timeout=STORE_CONNECT_SECONDS,
                command_timeout=STORE_COMMAND_SECONDS,
                pool_timeout=STORE_POOL_SECONDS,
            )
        except BaseException:  # refused, or the store failed: close what was opened
            for resource in owned:
                await resource.close()
            raise
        if direct is not None:
            app[DIRECT_READS] = direct
            owned.insert(0, direct)  # closed before the store
        if client is not None:
            app[TEMPORAL] = client
        else:
            lazy = await connect(settings, lazy=True, for_api=True)
            app[TEMPORAL] = lazy
            background.append(
                asyncio.create_task(
                    with_backoff(
                        f"Temporal at {settings.temporal_address}",
                        lambda: check_temporal(lazy),
                        max_delay=settings.connect_backoff_max_seconds,
                    )
                )
            )
        yield
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for resource in owned:
            await resource.close()

    app.cleanup_ctx.append(resources)
    app.on_startup.append(freeze_heap)  # after the resources above
    app.on_cleanup.append(thaw_heap)
    app.on_response_prepare.append(no_server_banner)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(docs.DOCS_PATH, docs.docs_page)
    app.router.add_get(docs.ASSET_ROUTE, docs.docs_asset)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    ui.setup(app)  # the back office under /ui
    return app
