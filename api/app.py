"""The aiohttp application: `init_app()` wires store, Temporal client and routes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from temporalio.client import Client

from api import configuration, fulfillment, orders
from api.auth import auth_middleware
from api.context import SETTINGS, STORE, TEMPORAL
from api.errors import Handler, error_middleware
from api.openapi import openapi_document
from store import Store
from workers.client import connect
from workers.settings import Settings

METRICS = web.AppKey("metrics", Counter[tuple[str, str, int]])
LATENCY = web.AppKey("latency", Counter[tuple[str, str]])
ROUTE_TABLES = (orders.routes, fulfillment.routes, configuration.routes)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.resource
    path = route.canonical if route is not None else "unmatched"
    request.app[METRICS][(request.method, path, response.status)] += 1
    request.app[LATENCY][(request.method, path)] += int((time.perf_counter() - started) * 1e6)
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(ROUTE_TABLES))


async def metrics(request: web.Request) -> web.Response:
    lines = ["# TYPE oms_http_requests_total counter"]
    for (method, path, status), count in sorted(request.app[METRICS].items()):
        lines.append(
            f'oms_http_requests_total{{method="{method}",path="{path}",status="{status}"}} {count}'
        )
    lines.append("# TYPE oms_http_request_microseconds_total counter")
    for (method, path), total in sorted(request.app[LATENCY].items()):
        lines.append(
            f'oms_http_request_microseconds_total{{method="{method}",path="{path}"}} {total}'
        )
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def init_app(
    settings: Settings, *, store: Store | None = None, client: Client | None = None
) -> web.Application:
    """Build the app. Store and client are opened here unless given (tests share theirs)."""
    app = web.Application(
        middlewares=[error_middleware, metrics_middleware, auth_middleware],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[METRICS] = Counter()
    app[LATENCY] = Counter()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        owned: list[Any] = []
        if store is None:
            opened = await Store.open(settings.resolved_database_url())
            owned.append(opened)
            app[STORE] = opened
        else:
            app[STORE] = store
        app[TEMPORAL] = client if client is not None else await connect(settings)
        if settings.bootstrap_admin_key:
            await app[STORE].config.upsert_api_key(
                settings.bootstrap_admin_key, name="bootstrap admin", role="admin", identity="admin"
            )
        yield
        for resource in owned:
            await resource.close()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    return app
