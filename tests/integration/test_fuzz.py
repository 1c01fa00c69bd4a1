"""A short, seeded schemathesis run against the API on a real stack (its own database,
SQLite and PostgreSQL, a worker, the Temporal dev server): every operation of the OpenAPI
document exercised with an admin key and a web shop key, valid and invalid input, and
not one server error or answer that breaks the document. `make fuzz` runs the same
checks longer against `make dev`.

Schemathesis is synchronous, so its CLI runs as a subprocess against the test server's
URL while this event loop serves the API."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio.testing import WorkflowEnvironment

from api.app import init_app
from store import Store
from tests.integration.conftest import KEYS, _postgres_database
from tests.integration.gates import eventually
from workers.main import build_worker
from workers.seed import seed_demo
from workers.settings import Settings

# the checks `make fuzz` runs (Makefile FUZZ_CHECKS)
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
SEED = int(os.environ.get("OMS_FUZZ_SEED", "20261122"))
EXAMPLES = int(os.environ.get("OMS_FUZZ_EXAMPLES", "10"))
# `make fuzz` adds the coverage phase (every boundary value of every schema: minutes)
PHASES = os.environ.get("OMS_FUZZ_PHASES", "examples,fuzzing")


def schemathesis() -> str:
    path = Path(sys.executable).parent / "st"
    if not path.exists():
        pytest.fail("schemathesis is missing; `make test` installs the dev extra")
    return str(path)


@pytest.fixture(params=["sqlite", "postgresql"])
async def fuzz_target(
    request: pytest.FixtureRequest,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> AsyncIterator[str]:
    """The API on a store of its own (the fuzzer rewrites configuration and keys), with a
    worker; yields its base URL."""
    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    else:
        found = await _postgres_database()
        if found is None:
            pytest.skip("PostgreSQL unreachable (OMS_REQUIRE_POSTGRES unset)")
        url, drop = found
    settings = Settings(database_url=url, task_queue=f"oms-fuzz-{uuid.uuid4().hex[:8]}")
    store = await Store.open(url)
    await seed_demo(store)
    client = temporal_env.client
    http = TestClient(TestServer(init_app(settings, store=store, client=client)))
    await http.start_server()
    try:
        async with build_worker(client, store, settings):
            base = str(http.make_url("")).rstrip("/")
            # /ready says 503 until Temporal lists the new worker's pollers: the fuzzer
            # starts on a ready stack (a 503 there is the answer it should give then)
            await eventually(lambda: _ready(base), "the stack ready")
            yield base
    finally:
        await http.close()
        await store.close()
        if drop is not None:
            await drop()


async def _ready(base: str) -> bool | None:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/ready") as answer:
        return True if answer.status == 200 else None


async def run_schemathesis(base: str, key: str, workdir: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        schemathesis(),
        "run",
        f"{base}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-shrink",
        "-H",
        f"Authorization: Bearer {key}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,  # its example database (.schemathesis/) goes there
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode(errors="replace")


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    fuzz_target: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{fuzz_target}/openapi.json") as r:
        assert r.status == 200
        document = await r.json()
    # every operation but the document itself (schemathesis does not test where it
    # loaded the schema from)
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    } - {"GET /openapi.json"}
    for name in ("admin", "web"):
        code, output = await run_schemathesis(fuzz_target, KEYS[name], tmp_path)
        assert code == 0, f"schemathesis with the {name} key:\n{output[-20000:]}"
        # every operation of the document was sent requests
        assert f"Selected: {len(operations)}/{len(operations)}" in output, output[-3000:]
        assert f"Tested: {len(operations)}" in output, output[-3000:]
