"""The integration stack: real Temporal dev server, real database (SQLite file and
PostgreSQL), a real worker and the API over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import init_app
from oms import webhooks
from oms.ids import order_key
from oms.targets import LOOPBACK
from store import Store
from workers.main import build_worker
from workers.seed import seed_demo
from workers.settings import Settings

POSTGRES_URL = os.environ.get("OMS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEYS = {
    "admin": "dev-admin",
    "ops": "dev-ops",
    "web": "dev-web",
    "b2b": "dev-b2b",
    "alice": "dev-alice",
    "WH-BERLIN": "dev-berlin",
    "WH-MUNICH": "dev-munich",
    "ST-HAMBURG": "dev-hamburg",
    "WH-LONDON": "dev-london",
}
# ship-to addresses near the demo locations
BERLIN = {
    "name": "Ada",
    "line1": "Main St 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
    "lat": 52.52,
    "lon": 13.40,
}
WAIT_SECONDS = float(os.environ.get("OMS_TEST_WAIT_SECONDS", "30"))


def order_body(
    *,
    order_id: str | None = None,
    channel: str = "web",
    sku: str = "SKU-1",
    quantity: int = 2,
    price: str = "19.99",
    **overrides: Any,
) -> dict[str, Any]:
    total = f"{float(price) * quantity:.2f}"
    body: dict[str, Any] = {
        "order_id": order_id or f"T-{uuid.uuid4().hex[:12]}",
        "sales_channel": channel,
        "customer": {"id": "C-1", "email": "a@example.com", "name": "Ada"},
        "ship_to": BERLIN,
        "lines": [{"line_id": "1", "sku": sku, "quantity": quantity, "unit_price": price}],
        "payment": {"method": "card", "amount": total, "currency": "EUR", "authorized": True},
        "delivery": {"type": "ship", "ship_complete": False},
    }
    body.update(overrides)
    return body


def unique_sku() -> str:
    return f"SKU-T{uuid.uuid4().hex[:10]}"


@dataclass
class Stack:
    """One running OMS against one database, driven over HTTP."""

    http: TestClient[Any, Any]
    store: Store
    client: Client
    settings: Settings
    backend: str
    keys: dict[str, str] = field(default_factory=lambda: dict(KEYS))

    async def call(
        self, method: str, path: str, *, key: str = "admin", json: Any = None
    ) -> tuple[int, Any]:
        resp = await self.http.request(
            method, path, json=json, headers={"Authorization": f"Bearer {self.keys[key]}"}
        )
        ctype = resp.headers.get("Content-Type", "")
        body = await resp.json() if "json" in ctype else await resp.read()
        return resp.status, body

    async def make_channel(self, prefix: str = "ch", **config: Any) -> str:
        """A fresh sales channel with this configuration; returns its id."""
        channel_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        status, body = await self.call(
            "PUT", "/v1/sales-channels", json=[{"channel_id": channel_id, **config}]
        )
        assert status == 200, body
        return channel_id

    async def add_key(self, name: str, role: str, identity: str | None = None) -> None:
        """An API key for `name` (used as `key=name` in call())."""
        key = f"test-{name}-{uuid.uuid4().hex}"
        status, body = await self.call(
            "PUT",
            "/v1/api-keys",
            json={"key": key, "name": name, "role": role, "identity": identity or name},
        )
        assert status == 200, body
        self.keys[name] = key

    async def create_order(self, body: dict[str, Any], key: str | None = None) -> str:
        status, answer = await self.call(
            "POST", "/v1/orders", key=key or body["sales_channel"], json=body
        )
        assert status == 201, answer
        # the OMS's id of the order: `{the channel's id}@{channel}` (oms/ids.py)
        assert answer["order_id"] == order_key(body["order_id"], body["sales_channel"])
        return str(answer["order_id"])

    async def order(self, order_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/orders/{order_id}", key="ops")
        assert status == 200, body
        return dict(body)

    async def wait_for(
        self, order_id: str, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Poll the order view until `check` holds, failing after a deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        view: dict[str, Any] = {}
        while loop.time() < deadline:
            view = await self.order(order_id)
            if check(view):
                return view
            await asyncio.sleep(0.1)
        pytest.fail(
            f"order {order_id}: {what} not reached in {WAIT_SECONDS}s; "
            f"status {view.get('status')}, events "
            f"{[e['type'] for e in view.get('events', [])]}"
        )

    async def wait_status(self, order_id: str, *statuses: str) -> dict[str, Any]:
        return await self.wait_for(
            order_id, lambda v: v["status"] in statuses, f"status {'/'.join(statuses)}"
        )

    async def set_stock(self, rows: list[tuple[str, str, int]]) -> None:
        status, body = await self.call(
            "PUT",
            "/v1/inventory",
            json=[{"location_id": loc, "sku": sku, "on_hand": qty} for loc, sku, qty in rows],
        )
        assert status == 200, body

    async def atp(self, sku: str, channel: str = "web") -> dict[str, int]:
        status, body = await self.call("GET", f"/v1/availability?sku={sku}", key=channel)
        assert status == 200, body
        return {loc["location_id"]: loc["atp"] for loc in body["items"][0]["locations"]}

    async def current_shipment(self, order_id: str, location_id: str) -> str:
        view = await self.wait_for(
            order_id,
            lambda v: any(
                s["location_id"] == location_id and s["status"] == "OPEN" for s in v["shipments"]
            ),
            f"an open shipment at {location_id}",
        )
        key = str(
            next(
                s["shipment_key"]
                for s in view["shipments"]
                if s["location_id"] == location_id and s["status"] == "OPEN"
            )
        )
        await self.release_started(key)
        return key

    async def release_started(self, shipment_key: str) -> None:
        """The order shows a release once it has written it, a moment before it starts the
        release's workflow: wait for that too (tests look at the workflow at once)."""
        record = await self.store.fulfillment.shipment(shipment_key)
        assert record is not None, f"{shipment_key} is in the order view, not in the store"
        handle = self.client.get_workflow_handle(record.workflow_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            try:
                await handle.describe()
                return
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    async def pick(self, shipment_key: str, location_id: str, picked: dict[str, int]) -> None:
        """The location's pick report over HTTP (picked units per line), answered 200."""
        lines = [{"line_id": k, "picked_quantity": v} for k, v in picked.items()]
        status, answer = await self.call(
            "POST", f"/v1/shipments/{shipment_key}/pick", key=location_id, json={"lines": lines}
        )
        assert status == 200, answer

    async def fulfil(self, shipment_key: str, location_id: str, picked: dict[str, int]) -> None:
        """Pick, ship and deliver one shipment as the location would."""
        await self.pick(shipment_key, location_id, picked)
        for action, body in (
            ("ship", {"carrier": "DHL", "tracking_number": "TRACK-1"}),
            ("deliver", {}),
        ):
            status, answer = await self.call(
                "POST", f"/v1/shipments/{shipment_key}/{action}", key=location_id, json=body
            )
            assert status == 200, (action, answer)

    def worker(self, task_queue: str | None = None) -> Worker:
        settings = replace(self.settings, task_queue=task_queue or self.settings.task_queue)
        return build_worker(self.client, self.store, settings)


async def _postgres_database() -> tuple[str, Callable[[], Awaitable[None]]] | None:
    """A fresh database on the PostgreSQL server for this session, or None if unreachable."""
    admin = make_url(POSTGRES_URL).set(drivername="postgresql")
    name = f"oms_test_{uuid.uuid4().hex[:10]}"
    dsn = admin.render_as_string(hide_password=False)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        if os.environ.get("OMS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unreachable: {err}")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    url = admin.set(database=name, drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False), drop


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def stack(
    request: pytest.FixtureRequest,
    temporal_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    backend: str = request.param
    drop: Callable[[], Awaitable[None]] | None = None
    if backend == "sqlite":
        path = Path(tmp_path_factory.mktemp("store")) / "oms.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        found = await _postgres_database()
        if found is None:
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} unreachable (OMS_REQUIRE_POSTGRES unset)")
        url, drop = found
    # the tests' partners (webhooks, callbacks, approval systems) run on loopback
    settings = Settings(
        database_url=url,
        task_queue=f"oms-test-{uuid.uuid4().hex[:8]}",
        outgoing_allow=LOOPBACK,
    )
    store = await Store.open(url)
    await seed_demo(store)
    client = temporal_env.client
    app = init_app(settings, store=store, client=client)
    http = TestClient(TestServer(app))
    await http.start_server()
    worker = build_worker(client, store, settings)
    try:
        async with worker:
            yield Stack(http=http, store=store, client=client, settings=settings, backend=backend)
    finally:
        await http.close()
        await store.close()
        if drop is not None:
            await drop()


class Callback:
    """The web shop's callback endpoint: keeps every message with its signature."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.server: TestServer | None = None

    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/callback"))

    def refunds(self, order_id: str) -> list[tuple[str, dict[str, Any], bytes]]:
        found = []
        for header, raw in self.received:
            message = json.loads(raw)
            if message.get("type") == "refund_notice" and message.get("order_id") == order_id:
                found.append((header, message, raw))
        return found


@pytest.fixture
async def callback() -> AsyncIterator[Callback]:
    found = Callback()

    async def hook(request: web.Request) -> web.Response:
        found.received.append(
            (request.headers.get(webhooks.SIGNATURE_HEADER, ""), await request.read())
        )
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/callback", hook)
    found.server = TestServer(app)
    await found.server.start_server()
    try:
        yield found
    finally:
        await found.server.close()
