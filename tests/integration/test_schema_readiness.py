"""/ready says when the store's schema is behind the code (a release deployed before its
migrations ran): the store check fails with where the schema is, the revision the code
needs and what to run, instead of `ok` while requests touching new columns answer 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import init_app
from api.dependencies import HEAD_REVISION
from store import Store
from store.migrations import legacy
from workers.settings import Settings


async def store_check(http: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    resp = await http.get("/ready")
    body = await resp.json()
    return resp.status, body["checks"]["store"]


@asynccontextmanager
async def api_on(
    store: Store, url: str, temporal_env: WorkflowEnvironment
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(database_url=url, task_queue="oms-schema-check")
    http = TestClient(TestServer(init_app(settings, store=store, client=temporal_env.client)))
    await http.start_server()
    try:
        yield http
    finally:
        await http.close()


OK = {"status": "ok", "error": None}


async def test_ready_reports_a_store_whose_migrations_never_ran(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    # the API started with OMS_MIGRATE_ON_START=0 before the deploy step migrated
    url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    store = await Store.open(url, migrate=False)
    try:
        async with api_on(store, url, temporal_env) as http:
            status, check = await store_check(http)
            assert status == 503 and check["status"] == "failing", check
            assert "store schema at no revision" in check["error"], check
            assert f"this API needs revision {HEAD_REVISION}" in check["error"], check
            assert "oms db upgrade" in check["error"], check

            await store.db.migrate()  # the deploy step ran: ok from the next probe on
            _, check = await store_check(http)
            assert check == OK, check
    finally:
        await store.close()


async def test_ready_reports_a_store_from_before_alembic(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    store = await Store.open(url, migrate=False)
    try:
        # as the runner from before Alembic left it, its step 8 not run yet
        async with store.db.engine.begin() as conn:
            await conn.run_sync(lambda c: legacy.make(c, 7))
        async with api_on(store, url, temporal_env) as http:
            _, check = await store_check(http)
            assert check["status"] == "failing", check
            assert "migration 7 of the runner from before Alembic" in check["error"], check
            assert "oms db upgrade" in check["error"], check

            done = await store.db.migrate()  # step 8, then stamped at 0001
            assert [v for v, _ in done.legacy] == [8] and done.stamped == "0001", done
            _, check = await store_check(http)
            assert check == OK, check

            # a newer release migrated the store further: this one is still ready
            async with store.db.engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
            _, check = await store_check(http)
            assert check == OK, check
    finally:
        await store.close()
