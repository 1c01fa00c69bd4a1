"""Production mode (issue 9, point 1): with OMS_ENV=production the worker and the API
refuse to start with a missing, demo or short secret or bootstrap key, exiting non-zero
with a message that names the setting; with good ones they start and serve."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from temporalio.testing import WorkflowEnvironment

from store import Store
from tests.integration.conftest import Stack, _postgres_database
from tests.integration.gates import eventually
from workers.seed import seed_demo

ROOT = Path(__file__).resolve().parents[2]
# a refusal comes before any connection: this bounds the start of a Python process
EXIT_BOUND_SECONDS = 30.0
GOOD_SECRET = secrets.token_hex(32)
GOOD_ADMIN_KEY = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def store_url(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    """An empty store (migrated, no keys) on the stack's backend."""
    drop: Callable[[], Awaitable[None]] | None = None
    if stack.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    else:
        found = await _postgres_database()
        assert found is not None
        url, drop = found
    store = await Store.open(url)
    await store.close()
    try:
        yield url
    finally:
        if drop is not None:
            await drop()


def environment(url: str, **settings: str | None) -> dict[str, str]:
    """The process environment: no OMS_ variable of the test runner, these instead (None:
    unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMS_")}
    values: dict[str, str | None] = {
        "OMS_ENV": "production",
        "OMS_DATABASE_URL": url,
        # nothing listens there: a refusal must come before any connection
        "OMS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "OMS_WEBHOOK_SECRET": GOOD_SECRET,
        "OMS_BOOTSTRAP_ADMIN_KEY": GOOD_ADMIN_KEY,
        "OMS_API_HOST": "127.0.0.1",
        "OMS_API_PORT": str(free_port()),
        "OMS_CONNECT_BACKOFF_MAX_SECONDS": "1",
        "OMS_GRACEFUL_SHUTDOWN_SECONDS": "2",
        **settings,
    }
    env.update({k: v for k, v in values.items() if v is not None})
    return env


async def start(module: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def refused(module: str, env: dict[str, str]) -> str:
    """Start `module`, expect it to exit non-zero in bound; its stderr."""
    process = await start(module, env)
    try:
        _, err = await asyncio.wait_for(process.communicate(), EXIT_BOUND_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{module} still running after {EXIT_BOUND_SECONDS}s: it did not refuse")
    text = err.decode(errors="replace")
    assert process.returncode not in (0, None), text
    assert "Traceback" not in text, text  # a refusal, not a crash
    return text


BAD_SECRETS = {
    "unset": None,
    "dev default": "dev-secret",
    "compose demo": "change-me",
    "blank": "   ",
    "short": "a1b2c3d4e5f6a7b8c9d0",
    "not random": "ab" * 20,
}


# every case for the worker; the API runs the same check (two cases show it)
@pytest.mark.parametrize(
    ("module", "case"),
    [("workers.main", case) for case in BAD_SECRETS]
    + [("api.main", "unset"), ("api.main", "compose demo")],
)
async def test_a_bad_webhook_secret_is_refused(store_url: str, module: str, case: str) -> None:
    stderr = await refused(module, environment(store_url, OMS_WEBHOOK_SECRET=BAD_SECRETS[case]))
    assert "OMS_WEBHOOK_SECRET" in stderr, stderr
    assert "openssl rand -hex 32" in stderr, stderr


@pytest.mark.parametrize("key", ["change-me-admin", "dev-admin", "short-admin-key", " "])
async def test_a_bad_bootstrap_admin_key_is_refused(store_url: str, key: str) -> None:
    stderr = await refused("api.main", environment(store_url, OMS_BOOTSTRAP_ADMIN_KEY=key))
    assert "OMS_BOOTSTRAP_ADMIN_KEY" in stderr, stderr
    assert "OMS_WEBHOOK_SECRET" not in stderr, stderr


async def test_the_api_without_any_admin_key_is_refused(store_url: str) -> None:
    stderr = await refused("api.main", environment(store_url, OMS_BOOTSTRAP_ADMIN_KEY=None))
    assert "OMS_BOOTSTRAP_ADMIN_KEY" in stderr and "no admin API key" in stderr, stderr
    # the worker needs no admin key: it does not refuse for that (it waits for Temporal)


async def test_the_api_refuses_a_store_with_the_demo_keys(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        await seed_demo(store, stock=False)
    finally:
        await store.close()
    stderr = await refused("api.main", environment(store_url))
    assert "dev-admin" in stderr and "revoke" in stderr, stderr


async def test_an_unknown_run_mode_is_refused(store_url: str) -> None:
    for module in ("workers.main", "api.main"):
        stderr = await refused(module, environment(store_url, OMS_ENV="prod"))
        assert "OMS_ENV" in stderr, stderr


async def test_with_good_secrets_both_start_and_serve(
    store_url: str, temporal_env: WorkflowEnvironment
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = environment(
        store_url,
        OMS_TEMPORAL_ADDRESS=address,
        OMS_TASK_QUEUE=f"oms-prod-{uuid.uuid4().hex[:8]}",
    )
    worker = await start("workers.main", env)
    api = await start("api.main", env)
    logs: dict[str, list[str]] = {"worker": [], "api": []}

    async def read(name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            logs[name].append(line.decode(errors="replace"))

    readers = [asyncio.create_task(read("worker", worker)), asyncio.create_task(read("api", api))]
    base = f"http://127.0.0.1:{env['OMS_API_PORT']}"
    headers = {"Authorization": f"Bearer {GOOD_ADMIN_KEY}"}
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool | None:
                for name, process in (("worker", worker), ("api", api)):
                    assert process.returncode is None, (name, "".join(logs[name]))
                try:
                    async with http.get(f"{base}/ready") as resp:
                        return True if resp.status == 200 else None
                except aiohttp.ClientError:
                    return None

            await eventually(ready, "the API ready with the worker polling", 60)
            # the bootstrap key is the admin key
            async with http.get(f"{base}/v1/api-keys", headers=headers) as resp:
                body = await resp.json()
                assert resp.status == 200, body
            assert [k["name"] for k in body["api_keys"]] == ["bootstrap admin"]
        for name, process in (("worker", worker), ("api", api)):
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
            assert code == 0, (name, "".join(logs[name]))
        assert not any("refusing" in line for lines in logs.values() for line in lines)
    finally:
        for process in (worker, api):
            if process.returncode is None:
                process.kill()
                await process.wait()
        for reader in readers:
            reader.cancel()
