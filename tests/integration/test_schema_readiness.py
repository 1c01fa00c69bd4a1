"""/ready says when the store's schema is behind the code (a release deployed before its
migrations ran): the store check fails with the versions and what to run, instead of
`ok` while requests touching new columns answer 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import init_app
from api.dependencies import LATEST_MIGRATION
from store import Store
from workers.settings import Settings


async def ready(http: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    resp = await http.get("/ready")
    return resp.status, await resp.json()


async def test_ready_reports_a_store_schema_behind_the_code(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    store = await Store.open(url)
    settings = Settings(database_url=url, task_queue="oms-schema-check")
    http = TestClient(TestServer(init_app(settings, store=store, client=temporal_env.client)))
    await http.start_server()
    try:
        _, body = await ready(http)
        assert body["checks"]["store"] == {"status": "ok", "error": None}, body

        # the newest migration not applied yet, as after deploying code before migrating
        async with store.db.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM schema_migrations WHERE version = :v"), {"v": LATEST_MIGRATION}
            )
        status, body = await ready(http)
        assert status == 503, body
        store_check = body["checks"]["store"]
        assert store_check["status"] == "failing", body
        assert f"version {LATEST_MIGRATION - 1}" in store_check["error"], store_check
        assert "oms db upgrade" in store_check["error"], store_check

        await store.db.migrate()  # the migration runs (it is idempotent): ok again
        _, body = await ready(http)
        assert body["checks"]["store"] == {"status": "ok", "error": None}, body
    finally:
        await http.close()
        await store.close()
