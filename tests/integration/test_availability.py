"""GET /v1/availability over real HTTP on SQLite and PostgreSQL, on a store of its own
(locations whose ids sort differently by case and punctuation): the answer is the text
json.dumps wrote for it before the handler wrote it itself, and on PostgreSQL the API's
direct reads (store/direct.py) get past connections the server dropped or a read that
was cancelled midway, and are traced as the engine's statements are."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import update
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from activities.availability import channel_atp, safety_buffer, serves
from api.app import init_app
from oms import tracing
from store import Store
from store.direct import DirectReads
from store.tables import Inventory
from tests.integration.conftest import _postgres_database
from workers.settings import Settings
from workflows.model import LocationConfig, SalesChannelConfig

KEYS = {"web": "avail-web", "b2b": "avail-b2b", "ops": "avail-ops"}
# ids whose order differs by case and punctuation, one disabled, one for b2b only
LOCATIONS = [
    {"location_id": "zz_B", "type": "store"},
    {"location_id": "ZZ-b"},
    {"location_id": "zz-a", "type": "store"},
    {"location_id": "zz.c"},
    {"location_id": "ZZ0", "enabled": False},
    {"location_id": "WH-1", "channels": ["b2b"]},
    {"location_id": "ST-2", "type": "store"},
]
CHANNELS = [
    {
        "channel_id": "web",
        "name": "Web",
        "safety_buffers": {"store": 2, "zz-a": 5, "ZZ-b": -3},
        "excluded_locations": ["zz.c"],
    },
    {"channel_id": "b2b", "name": "B2B", "safety_buffers": {"warehouse": 1}},
]


@dataclass
class Api:
    http: TestClient[Any, Any]
    store: Store
    url: str
    backend: str

    async def get(self, path: str, key: str) -> tuple[int, str, str]:
        resp = await self.http.get(path, headers={"Authorization": f"Bearer {KEYS[key]}"})
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


@asynccontextmanager
async def serving(
    backend: str, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Api]:
    drop = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    else:
        found = await _postgres_database()
        if found is None:
            pytest.skip("PostgreSQL unreachable (OMS_REQUIRE_POSTGRES unset)")
        url, drop = found
    store = await Store.open(url)
    try:
        await store.config.upsert_locations(
            [
                LocationConfig.model_validate(
                    {"name": loc["location_id"], "lat": 52.5, "lon": 13.4, **loc}
                ).model_dump(mode="json")
                for loc in LOCATIONS
            ]
        )
        await store.config.upsert_channels(CHANNELS)
        await store.config.upsert_api_key(KEYS["web"], name="web", role="webshop", identity="web")
        await store.config.upsert_api_key(KEYS["b2b"], name="b2b", role="webshop", identity="b2b")
        await store.config.upsert_api_key(KEYS["ops"], name="ops", role="ops", identity="ops")
        settings = Settings(database_url=url, task_queue=f"oms-none-{uuid.uuid4().hex[:8]}")
        app = init_app(settings, store=store, client=temporal_env.client)
        http: TestClient[Any, Any] = TestClient(TestServer(app))
        await http.start_server()
        try:
            yield Api(http, store, url, backend)
        finally:
            await http.close()
    finally:
        await store.close()
        if drop is not None:
            await drop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def api(
    request: pytest.FixtureRequest, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Api]:
    async with serving(request.param, temporal_env, tmp_path) as found:
        yield found


@pytest.fixture
async def pg_api(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    """The direct reads are PostgreSQL's (SQLite has none)."""
    async with serving("postgresql", temporal_env, tmp_path) as found:
        yield found


async def reference(store: Store, skus: list[str], channel_id: str | None) -> str:
    """The answer as the handler wrote it before: the repository's rows (ordered by sku
    and location in the database), a dict per location, json.dumps."""
    locations = {
        loc["location_id"]: LocationConfig.model_validate(loc)
        for loc in await store.config.locations()
    }
    channel = SalesChannelConfig(channel_id="-")
    if channel_id:
        raw = await store.config.channel(channel_id)
        assert raw is not None
        channel = SalesChannelConfig.model_validate(raw)
    rows = await store.inventory.stock(skus)
    items = []
    for sku in skus:
        visible = [
            r
            for r in rows
            if r.sku == sku
            and r.location_id in locations
            and serves(locations[r.location_id], channel)
        ]
        atps = [
            channel_atp(locations[r.location_id], channel, r.on_hand, r.reserved) for r in visible
        ]
        items.append(
            {
                "sku": sku,
                "atp": sum(atps),
                "locations": [
                    {
                        "location_id": r.location_id,
                        "on_hand": r.on_hand,
                        "reserved": r.reserved,
                        "buffer": safety_buffer(locations[r.location_id], channel),
                        "atp": atp,
                    }
                    for r, atp in zip(visible, atps, strict=True)
                ],
            }
        )
    return json.dumps({"sales_channel": channel_id, "items": items})


async def stock(api: Api, sku: str, levels: dict[str, tuple[int, int]]) -> None:
    """On hand and reserved per location (reserved written directly: no order needed)."""
    await api.store.inventory.set_stock(
        [(loc, sku, on_hand) for loc, (on_hand, _) in levels.items()]
    )
    async with api.store.db.transaction() as session:
        for loc, (_, reserved) in levels.items():
            await session.execute(
                update(Inventory)
                .where(Inventory.location_id == loc, Inventory.sku == sku)
                .values(reserved=reserved)
            )


async def test_the_answer_is_the_text_it_was(api: Api) -> None:
    every = {loc["location_id"]: (7 + i, i % 3) for i, loc in enumerate(LOCATIONS)}
    await stock(api, "SKU-A", every)
    await stock(api, "SKU-B", {"zz-a": (4, 9), "WH-1": (3, 0), "ZZ-b": (0, 0)})
    await stock(api, "SKU-X", {"ZZ0": (5, 0), "zz.c": (5, 0)})  # only where web may not look
    asked = [
        ("web", "/v1/availability?sku=SKU-A", ["SKU-A"], "web"),
        ("b2b", "/v1/availability?sku=SKU-A,SKU-B", ["SKU-A", "SKU-B"], "b2b"),
        (
            "ops",
            "/v1/availability?sku=SKU-B,SKU-A,SKU-B&sku=SKU-NONE&sku=SKU-X&sales_channel=web",
            ["SKU-B", "SKU-A", "SKU-NONE", "SKU-X"],
            "web",
        ),
        ("ops", "/v1/availability?sku=SKU-A&sku=SKU-X", ["SKU-A", "SKU-X"], None),
        ("ops", "/v1/availability?sku=SKU-A&sales_channel=", ["SKU-A"], ""),
        # a web shop's own channel, whatever it names
        ("web", "/v1/availability?sku=SKU-X&sales_channel=b2b", ["SKU-X"], "web"),
    ]
    for key, path, skus, channel in asked:
        status, content_type, text = await api.get(path, key)
        assert status == 200, text
        assert content_type == "application/json; charset=utf-8"
        assert text == await reference(api.store, skus, channel), path
    # every location of SKU-A that web may use, in the order of their ids
    status, _, text = await api.get("/v1/availability?sku=SKU-A", "web")
    served = [loc["location_id"] for loc in json.loads(text)["items"][0]["locations"]]
    assert sorted(served) == ["ST-2", "ZZ-b", "zz-a", "zz_B"]
    assert served == [
        loc["location_id"]
        for loc in await api.store.config.locations()
        if loc["location_id"] in served
    ]


async def test_errors_are_the_same(api: Api) -> None:
    status, _, text = await api.get("/v1/availability?sku=SKU-A&sales_channel=nope", "ops")
    assert (status, json.loads(text)["error"]["code"]) == (404, "sales_channel_not_found")
    status, _, text = await api.get("/v1/availability", "ops")
    assert (status, json.loads(text)["error"]["code"]) == (400, "invalid_query")
    resp = await api.http.get("/v1/availability?sku=SKU-A", headers={"Authorization": "Bearer x"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_a_location_change_through_the_api_shows_at_once(api: Api) -> None:
    await stock(api, "SKU-C", {"ST-2": (5, 0), "zz_B": (6, 0)})
    status, _, text = await api.get("/v1/availability?sku=SKU-C", "web")
    assert json.loads(text)["items"][0]["atp"] == 3 + 4
    admin = f"avail-admin-{uuid.uuid4().hex}"
    await api.store.config.upsert_api_key(admin, name="admin", role="admin", identity="admin")
    body = [
        {**loc, "enabled": loc["location_id"] != "ST-2"}
        for loc in await api.store.config.locations()
        if loc["location_id"] != "ZZ0"  # left as it is (disabled)
    ]
    resp = await api.http.put(
        "/v1/locations", json=body, headers={"Authorization": f"Bearer {admin}"}
    )
    assert resp.status == 200, await resp.text()
    status, _, text = await api.get("/v1/availability?sku=SKU-C", "web")
    assert status == 200
    assert json.loads(text)["items"][0]["locations"] == [
        {"location_id": "zz_B", "on_hand": 6, "reserved": 0, "buffer": 2, "atp": 4}
    ]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_connections_the_server_dropped_are_replaced(pg_api: Api) -> None:
    api = pg_api
    await stock(api, "SKU-D", {"ST-2": (5, 0)})
    # several connections idle in the direct pool (questions at the same time)
    answers = await asyncio.gather(
        *(api.get("/v1/availability?sku=SKU-D", "web") for _ in range(4))
    )
    status, _, before = answers[0]
    assert [a[0] for a in answers] == [200] * 4 and len({a[2] for a in answers}) == 1
    admin = await asyncpg.connect(_dsn(api.url))
    try:
        # a restart or an operator ends every session: the pooled connections are dead
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    status, _, after = await api.get("/v1/availability?sku=SKU-D", "web")
    assert (status, after) == (200, before)


async def test_a_read_cancelled_midway_leaves_no_busy_connection(pg_api: Api) -> None:
    api = pg_api
    reads = DirectReads.open(
        api.store.db, connect_timeout=5, command_timeout=None, pool_timeout=5, max_size=1
    )
    assert reads is not None
    try:
        assert (await reads.principal(KEYS["web"])) is not None
        with pytest.raises(TimeoutError):
            # the one connection, cancelled in the middle of a statement
            async with asyncio.timeout(0.2):
                await reads._read(lambda conn: conn.fetch("SELECT pg_sleep(30)"))
        async with asyncio.timeout(5):
            principal = await reads.principal(KEYS["web"])
        assert principal is not None and principal.identity == "web"
        assert await reads.principal("no such key") is None
    finally:
        await reads.close()


async def test_a_broken_idle_connection_is_replaced_and_the_read_asked_again(pg_api: Api) -> None:
    api = pg_api
    reads = DirectReads.open(
        api.store.db, connect_timeout=5, command_timeout=None, pool_timeout=5, max_size=3
    )
    assert reads is not None
    try:
        # three connections, idle afterwards
        await asyncio.gather(
            *(reads._read(lambda conn: conn.fetchval("SELECT pg_sleep(0.05)")) for _ in range(3))
        )
        idle = [conn for _, conn in reads._idle]
        assert len(idle) == 3
        used: list[asyncpg.Connection] = []

        async def run(conn: asyncpg.Connection) -> Any:
            used.append(conn)
            if len(used) == 1:  # what a connection ended by the server may raise
                raise asyncpg.InternalClientError("cannot switch to state 12")
            return await conn.fetchval("SELECT 1")

        assert await reads._read(run) == 1
        assert used[0] in idle and used[1] not in idle
        assert all(conn.is_closed() for conn in idle)  # its idle neighbours went too

        # a connection just opened that fails is an answer, not asked again
        async def broken(conn: asyncpg.Connection) -> Any:
            used.append(conn)
            raise asyncpg.InterfaceError("connection is closed")

        for _, conn in reads._idle:  # no connection used before this time
            conn.terminate()
        reads._idle.clear()
        with pytest.raises(asyncpg.InterfaceError):
            await reads._read(broken)
        assert len(used) == 3
    finally:
        await reads.close()


async def test_direct_reads_are_traced_like_the_engines_statements(pg_api: Api) -> None:
    api = pg_api
    exporter = InMemorySpanExporter()
    provider = tracing.new_provider("oms-test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.install(provider)
    try:
        reads = DirectReads.open(
            api.store.db, connect_timeout=5, command_timeout=None, pool_timeout=5
        )
    finally:
        tracing.install(previous)
    assert reads is not None
    try:
        assert await reads.principal(KEYS["ops"]) is not None
        await reads.stock(["SKU-A"])
    finally:
        await reads.close()
    spans = exporter.get_finished_spans()
    assert [s.kind for s in spans] == [SpanKind.CLIENT, SpanKind.CLIENT]
    statements = [(s.attributes or {}).get("db.statement", "") for s in spans]
    assert "FROM api_keys" in str(statements[0]) and "FROM inventory" in str(statements[1])
    assert all((s.attributes or {}).get("db.system") == "postgresql" for s in spans)
