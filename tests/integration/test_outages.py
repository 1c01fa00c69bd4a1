"""Outages as users see them: the store unreachable, Temporal unreachable, no worker
polling, a command whose outcome is not known in time, and processes started during an
outage (issue 8, points 1 and 5).

Each answer must be a 503 with an error code saying which dependency is missing and a
Retry-After, or a 202 with a command id to look up, within a bound (a hang check, not a
benchmark); `/health` stays a liveness check and `/ready` says which dependency fails."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from api.app import init_app
from api.commands import encode_command_id
from api.idempotency import caller_tag
from api.messages import CancelRequest
from oms.ids import order_key
from store import Store
from store.tables import PendingCommand
from tests.conftest import temporal_cli
from tests.integration.conftest import KEYS, POSTGRES_URL, Stack, _postgres_database, order_body
from workers.seed import seed_demo
from workers.settings import Settings
from workflows.order import order_workflow_id

# an answer slower than this is a hang
ANSWER_BOUND_SECONDS = 10.0
DEADLINE_SECONDS = 60.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed(
    http: TestClient[Any, Any], method: str, path: str, *, key: str | None = "ops", json: Any = None
) -> tuple[int, Any, dict[str, str], float]:
    """One request: status, body, headers and how long the answer took."""
    headers = {"Authorization": f"Bearer {KEYS.get(key, key)}"} if key else {}
    started = time.monotonic()
    resp = await http.request(method, path, json=json, headers=headers)
    body = (
        await resp.json() if "json" in resp.headers.get("Content-Type", "") else await resp.read()
    )
    return resp.status, body, dict(resp.headers), time.monotonic() - started


def assert_outage(answer: tuple[int, Any, dict[str, str], float], code: str) -> None:
    status, body, headers, elapsed = answer
    assert status == 503, (status, body)
    assert body["error"]["code"] == code, body
    assert int(headers["Retry-After"]) > 0, headers
    assert elapsed < ANSWER_BOUND_SECONDS, f"answered after {elapsed:.1f}s"


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{what}: not reached in {DEADLINE_SECONDS}s")


async def seeded_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    store = await Store.open(url)
    try:
        await seed_demo(store)
    finally:
        await store.close()
    return url


async def serve(app: Any) -> TestClient[Any, Any]:
    http: TestClient[Any, Any] = TestClient(TestServer(app))
    await http.start_server()
    return http


# -- the store unreachable ------------------------------------------------------------------


class Blocked:
    """Connections to one test database revoked and restored (the server keeps running)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.name = str(parsed.database)
        self.dsn = make_url(POSTGRES_URL).set(drivername="postgresql")
        self.dsn_text = self.dsn.render_as_string(hide_password=False)

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.dsn_text, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def block(self) -> None:
        await self._admin(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    async def restore(self) -> None:
        await self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    found = await _postgres_database()
    if found is None:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unreachable (OMS_REQUIRE_POSTGRES unset)")
    url, drop = found
    store = await Store.open(url)
    try:
        await seed_demo(store)
    finally:
        await store.close()
    try:
        yield url
    finally:
        await Blocked(url).restore()
        await drop()


async def test_store_unreachable_answers_503_store_unavailable(
    postgres_url: str, temporal_env: WorkflowEnvironment
) -> None:
    settings = Settings(database_url=postgres_url, task_queue=f"oms-none-{uuid.uuid4().hex[:8]}")
    # the API opens its own store (with its short timeouts)
    http = await serve(init_app(settings, client=temporal_env.client))
    blocked = Blocked(postgres_url)
    try:
        status, body, _, _ = await timed(http, "GET", "/v1/orders")
        assert status == 200, body
        await blocked.block()

        # every authenticated request: the key lookup needs the store
        assert_outage(await timed(http, "GET", "/v1/orders"), "store_unavailable")
        assert_outage(await timed(http, "GET", "/v1/orders/NOPE-1"), "store_unavailable")
        assert_outage(
            await timed(http, "POST", "/v1/orders", key="web", json=order_body()),
            "store_unavailable",
        )
        assert_outage(await timed(http, "GET", "/v1/approvals"), "store_unavailable")

        status, body, _, _ = await timed(http, "GET", "/health", key=None)
        assert (status, body) == (200, {"status": "ok"})
        status, body, headers, elapsed = await timed(http, "GET", "/ready", key=None)
        assert status == 503, body
        assert elapsed < ANSWER_BOUND_SECONDS
        assert body["status"] == "not_ready"
        assert body["checks"]["store"]["status"] == "failing", body
        assert body["checks"]["store"]["error"], body
        assert body["checks"]["temporal"]["status"] == "ok", body
        assert "Retry-After" in headers

        await blocked.restore()

        async def answers() -> bool:
            return (await timed(http, "GET", "/v1/orders"))[0] == 200

        await eventually(answers, "the API answering once the store is back")
        status, body, _, _ = await timed(http, "GET", "/ready", key=None)
        assert body["checks"]["store"] == {"status": "ok", "error": None}, body
    finally:
        await blocked.restore()
        await http.close()


# -- Temporal unreachable -------------------------------------------------------------------


async def test_temporal_unreachable_answers_503_temporal_unavailable(tmp_path: Path) -> None:
    url = await seeded_sqlite(tmp_path)
    settings = Settings(
        database_url=url,
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing listens there
        task_queue=f"oms-none-{uuid.uuid4().hex[:8]}",
    )
    # the API starts although Temporal is down (it used to fail at start)
    http = await serve(init_app(settings))
    try:
        body = order_body()
        assert_outage(
            await timed(http, "POST", "/v1/orders", key="web", json=body), "temporal_unavailable"
        )
        # the order row was written before the start failed: a cancel is refused, not a hang
        assert_outage(
            await timed(http, "POST", f"/v1/orders/{body['order_id']}/cancel", json={}),
            "temporal_unavailable",
        )
        # what only needs the store still answers
        status, listed, _, _ = await timed(http, "GET", "/v1/orders")
        assert status == 200, listed

        status, health, _, _ = await timed(http, "GET", "/health", key=None)
        assert status == 200, health
        status, ready, _, elapsed = await timed(http, "GET", "/ready", key=None)
        assert status == 503, ready
        assert elapsed < ANSWER_BOUND_SECONDS
        checks = ready["checks"]
        assert checks["store"]["status"] == "ok", ready
        assert checks["temporal"]["status"] == "failing", ready
        assert checks["temporal"]["error"], ready
        assert checks["workers"]["status"] == "failing", ready
    finally:
        await http.close()


# -- no worker polling ----------------------------------------------------------------------


async def test_no_worker_answers_503_no_worker(stack: Stack) -> None:
    # the stack's own worker polls its task queue: ready (once its first poll arrived)
    ready: dict[str, Any] = {}

    async def stack_ready() -> bool:
        status, answer, _, _ = await timed(stack.http, "GET", "/ready", key=None)
        ready.update(answer)
        return status == 200

    await eventually(stack_ready, "the stack ready")
    assert ready["status"] == "ready"
    assert ready["checks"]["workers"]["status"] == "ok"
    assert ready["checks"]["workers"]["pollers"] >= 1

    # an API whose task queue nobody polls
    settings = replace(stack.settings, task_queue=f"oms-nobody-{uuid.uuid4().hex[:8]}")
    http = await serve(init_app(settings, store=stack.store, client=stack.client))
    body = order_body()
    order_id = order_key(body["order_id"], "web")
    try:
        status, created, _, _ = await timed(http, "POST", "/v1/orders", key="web", json=body)
        assert status == 201, created  # a start needs no worker: it runs when one comes
        for command in ("cancel", "resume"):
            assert_outage(
                await timed(http, "POST", f"/v1/orders/{order_id}/{command}", json={}), "no_worker"
            )

        status, ready, headers, elapsed = await timed(http, "GET", "/ready", key=None)
        assert status == 503, ready
        assert elapsed < ANSWER_BOUND_SECONDS
        assert ready["checks"]["workers"] == {
            "status": "failing",
            "pollers": 0,
            "error": f"no worker polls task queue {settings.task_queue}",
        }
        assert ready["checks"]["store"]["status"] == "ok"
        assert ready["checks"]["temporal"]["status"] == "ok"
        assert "Retry-After" in headers
    finally:
        await http.close()
        await stack.client.get_workflow_handle(order_workflow_id(order_id)).terminate("test over")


# -- a command whose outcome is not known in time --------------------------------------------


async def test_command_without_answer_is_202_with_a_command_to_look_up(stack: Stack) -> None:
    """The worker went away (Temporal still lists its poller): the cancel is sent, nobody
    answers, so the API answers 202 with a command id; the look-up says pending until a
    worker applies it, then done with the result. Only the sender may look it up."""
    settings = replace(
        stack.settings,
        task_queue=f"oms-gone-{uuid.uuid4().hex[:8]}",
        command_timeout_seconds=3.0,
    )
    http = await serve(init_app(settings, store=stack.store, client=stack.client))
    try:
        body = order_body()
        order_id = order_key(body["order_id"], "web")
        async with stack.worker(settings.task_queue):
            status, created, _, _ = await timed(http, "POST", "/v1/orders", key="web", json=body)
            assert status == 201, created

            async def under_way() -> bool:
                row = await stack.store.orders.get(order_id)
                return row is not None and row.status != "CREATED"

            await eventually(under_way, "the order under way")

        status, pending, _, elapsed = await timed(
            http, "POST", f"/v1/orders/{order_id}/cancel", json={}
        )
        assert status == 202, pending
        # a hang check: the API answers after its 3 s command bound; this test's API shares
        # its event loop with the session's in-process worker, whose activities (PDF
        # rendering among them) can hold the loop for seconds under a full run's load
        assert elapsed < ANSWER_BOUND_SECONDS + 10
        command_id = pending["command_id"]
        assert pending == {
            "command_id": command_id,
            "status": "pending",
            "poll": f"/v1/commands/{command_id}",
        }

        status, looked, _, elapsed = await timed(http, "GET", pending["poll"])
        assert (status, looked["status"]) == (202, "pending"), looked
        assert elapsed < ANSWER_BOUND_SECONDS
        # another caller, or a made-up id: not found
        status, other, _, _ = await timed(http, "GET", pending["poll"], key="web")
        assert (status, other["error"]["code"]) == (404, "command_not_found"), other
        for made_up in ("nonsense", "b3JkZXItWAp4"):
            status, other, _, _ = await timed(http, "GET", f"/v1/commands/{made_up}")
            assert status == 404, other

        async with stack.worker(settings.task_queue):
            answer: dict[str, Any] = {}

            async def done() -> bool:
                status, found, _, elapsed = await timed(http, "GET", pending["poll"])
                assert elapsed < ANSWER_BOUND_SECONDS
                answer.update(found)
                return status == 200

            await eventually(done, "the cancel applied once a worker is back")
        assert answer["status"] == "done", answer
        assert answer["result"]["status"] in ("CANCELLED",), answer
    finally:
        await http.close()


async def _kept_cancel(
    stack: Stack, http: TestClient[Any, Any], reason: str
) -> tuple[str, str, str]:
    """A new order, and an ops cancel of it as the API keeps a command answered 202 that
    Temporal has never heard of: (order id, workflow id, update id)."""
    body = order_body()
    order_id = order_key(body["order_id"], "web")
    workflow_id = order_workflow_id(order_id)
    status, created, _, _ = await timed(http, "POST", "/v1/orders", key="web", json=body)
    assert status == 201, created
    ops = await stack.store.config.principal(KEYS["ops"])
    assert ops is not None
    update_id = f"cancel:{caller_tag(ops)}:auto-{uuid.uuid4().hex}"
    argument = CancelRequest(reason=reason).model_dump(mode="json")
    run_id = (await stack.client.get_workflow_handle(workflow_id).describe()).run_id
    await stack.store.commands.remember(workflow_id, update_id, "cancel", argument, run_id)
    return order_id, workflow_id, update_id


async def test_a_command_temporal_dropped_is_sent_again_by_its_look_up(stack: Stack) -> None:
    """Temporal keeps an update no worker has accepted in memory only: a workflow task that
    times out (its worker died holding it) or a server restart drops it, and the look-up
    then found no such update and said 404, the 202's command lost. The API keeps every
    command it answered 202 for, and the look-up sends it again under the same update id.
    Here the command is as the API kept it, and Temporal has never heard of it."""
    http = await serve(init_app(stack.settings, store=stack.store, client=stack.client))
    try:
        order_id, workflow_id, update_id = await _kept_cancel(stack, http, "customer called")
        command_id = encode_command_id(workflow_id, update_id)
        # only the caller who sent it may look it up (and so send it again)
        status, other, _, _ = await timed(http, "GET", f"/v1/commands/{command_id}", key="web")
        assert (status, other["error"]["code"]) == (404, "command_not_found"), other
        answer: dict[str, Any] = {}

        async def done() -> bool:
            status, found, _, elapsed = await timed(http, "GET", f"/v1/commands/{command_id}")
            assert elapsed < ANSWER_BOUND_SECONDS
            assert status in (200, 202), found
            answer.update(found)
            return status == 200

        await eventually(done, "the dropped cancel applied by its look-up")
        assert answer["status"] == "done" and answer["result"]["status"] == "CANCELLED", answer
        row = await stack.store.orders.get(order_id)
        assert row is not None and row.status == "CANCELLED"
        # the outcome is Temporal's from now on; the kept command is cleared
        assert await stack.store.commands.find(workflow_id, update_id) is None
        status, again, _, _ = await timed(http, "GET", f"/v1/commands/{command_id}")
        assert (status, again["status"]) == (200, "done"), again
    finally:
        await http.close()


async def test_a_dropped_command_older_than_an_hour_is_not_sent_again(stack: Stack) -> None:
    """A look-up long after the 202 learns the command was never applied rather than
    applying it then."""
    http = await serve(init_app(stack.settings, store=stack.store, client=stack.client))
    try:
        order_id, workflow_id, update_id = await _kept_cancel(stack, http, "chaos")
        async with stack.store.db.transaction() as session:
            await session.execute(
                update(PendingCommand)
                .where(PendingCommand.update_id == update_id)
                .values(created_at=datetime.now(UTC) - timedelta(hours=2))
            )
        command_id = encode_command_id(workflow_id, update_id)
        status, answer, _, _ = await timed(http, "GET", f"/v1/commands/{command_id}")
        assert (status, answer["error"]["code"]) == (404, "command_not_found"), answer
        assert await stack.store.commands.find(workflow_id, update_id) is None
        row = await stack.store.orders.get(order_id)
        assert row is not None and row.status != "CANCELLED"
    finally:
        await http.close()


# -- processes that wait --------------------------------------------------------------------


async def _read_lines(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def test_worker_started_without_temporal_waits_and_connects(tmp_path: Path) -> None:
    port = free_port()
    url = await seeded_sqlite(tmp_path)
    task_queue = f"oms-late-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OMS_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "OMS_DATABASE_URL": url,
        "OMS_TASK_QUEUE": task_queue,
        "OMS_CONNECT_BACKOFF_MAX_SECONDS": "2",
        "OMS_GRACEFUL_SHUTDOWN_SECONDS": "5",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.main",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert worker.stderr is not None
    lines: list[str] = []
    reader = asyncio.create_task(_read_lines(worker.stderr, lines))
    settings = Settings(
        database_url=url, temporal_address=f"127.0.0.1:{port}", task_queue=task_queue
    )
    http = await serve(init_app(settings))
    server: asyncio.subprocess.Process | None = None
    try:

        async def waited_twice() -> bool:
            assert worker.returncode is None, "".join(lines)
            return sum("waiting for Temporal" in line for line in lines) >= 2

        await eventually(waited_twice, "the worker waiting for Temporal")
        assert worker.returncode is None, "".join(lines)
        status, ready, _, _ = await timed(http, "GET", "/ready", key=None)
        assert status == 503, ready
        assert ready["checks"]["temporal"]["status"] == "failing", ready

        server = await asyncio.create_subprocess_exec(
            temporal_cli(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--log-level",
            "error",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def polling() -> bool:
            assert worker.returncode is None, "".join(lines)
            status, ready, _, _ = await timed(http, "GET", "/ready", key=None)
            return status == 200 and ready["checks"]["workers"]["pollers"] >= 1

        await eventually(polling, "the worker polling once Temporal is up")
        assert any("reachable after" in line for line in lines), "".join(lines)

        # Temporal goes away under a connected API: 503 temporal_unavailable, no hang
        server.terminate()
        await server.wait()
        assert_outage(
            await timed(http, "POST", "/v1/orders", key="web", json=order_body()),
            "temporal_unavailable",
        )
        status, ready, _, elapsed = await timed(http, "GET", "/ready", key=None)
        assert status == 503, ready
        assert elapsed < ANSWER_BOUND_SECONDS
        assert ready["checks"]["temporal"]["status"] == "failing", ready
        assert ready["checks"]["store"]["status"] == "ok", ready
        assert worker.returncode is None, "".join(lines)

        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), DEADLINE_SECONDS)
        assert code == 0, "".join(lines)
    finally:
        await http.close()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        reader.cancel()
        if server is not None and server.returncode is None:
            server.terminate()
            await server.wait()


async def test_worker_and_api_started_without_the_store_wait_for_it(
    postgres_url: str, temporal_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = Blocked(postgres_url)
    await blocked.block()
    address = temporal_env.client.service_client.config.target_host
    task_queue = f"oms-nostore-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OMS_TEMPORAL_ADDRESS": address,
        "OMS_DATABASE_URL": postgres_url,
        "OMS_TASK_QUEUE": task_queue,
        "OMS_CONNECT_BACKOFF_MAX_SECONDS": "2",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.main",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert worker.stderr is not None
    lines: list[str] = []
    reader = asyncio.create_task(_read_lines(worker.stderr, lines))
    # the API's start waits for the store too (it used to fail)
    settings = Settings(database_url=postgres_url, temporal_address=address, task_queue=task_queue)
    http: TestClient[Any, Any] = TestClient(TestServer(init_app(settings)))
    caplog.set_level("WARNING", logger="oms.connect")
    starting = asyncio.create_task(http.start_server())
    try:

        async def both_waiting() -> bool:
            assert worker.returncode is None, "".join(lines)
            assert not starting.done() or starting.exception() is None
            api_waits = sum("waiting for the store" in r.getMessage() for r in caplog.records)
            worker_waits = sum("waiting for the store" in line for line in lines)
            return api_waits >= 2 and worker_waits >= 2

        await eventually(both_waiting, "the worker and the API waiting for the store")
        assert not starting.done()
        assert worker.returncode is None, "".join(lines)

        await blocked.restore()
        await asyncio.wait_for(starting, DEADLINE_SECONDS)

        async def ready() -> bool:
            assert worker.returncode is None, "".join(lines)
            status, _, _, _ = await timed(http, "GET", "/ready", key=None)
            return status == 200

        await eventually(ready, "the API ready with the worker polling")
        status, listed, _, _ = await timed(http, "GET", "/v1/orders")
        assert status == 200, listed

        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), DEADLINE_SECONDS) == 0, "".join(lines)
    finally:
        await blocked.restore()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await http.close()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        reader.cancel()


async def test_sigterm_lets_the_running_activity_finish(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    """A work order is being sent to the location's webhook when the worker gets SIGTERM:
    the worker takes no new tasks but lets that call finish (OMS_GRACEFUL_SHUTDOWN_SECONDS)
    and then exits 0; the partner's answer reaches it instead of a dropped connection."""
    arrived, release = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []

    async def webhook(request: web.Request) -> web.Response:
        await request.read()
        arrived.set()
        await release.wait()
        transport = request.transport
        outcomes.append("gone" if transport is None or transport.is_closing() else "answered")
        return web.json_response({"ok": True})

    partner_app = web.Application()
    partner_app.router.add_post("/work-orders", webhook)
    partner = TestServer(partner_app)
    await partner.start_server()
    url = await seeded_sqlite(tmp_path)
    store = await Store.open(url)
    try:
        (berlin,) = await store.config.locations(["WH-BERLIN"])
        berlin["webhook_url"] = str(partner.make_url("/work-orders"))
        await store.config.upsert_locations([berlin])
    finally:
        await store.close()
    task_queue = f"oms-term-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OMS_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "OMS_DATABASE_URL": url,
        "OMS_TASK_QUEUE": task_queue,
        "OMS_GRACEFUL_SHUTDOWN_SECONDS": "30",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.main",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert worker.stderr is not None
    lines: list[str] = []
    reader = asyncio.create_task(_read_lines(worker.stderr, lines))
    settings = Settings(database_url=url, task_queue=task_queue)
    http = await serve(init_app(settings, client=temporal_env.client))
    try:
        status, created, _, _ = await timed(
            http, "POST", "/v1/orders", key="web", json=order_body(sku="SKU-1", quantity=1)
        )
        assert status == 201, created

        async def sending() -> bool:
            assert worker.returncode is None, "".join(lines)
            return arrived.is_set()

        await eventually(sending, "the work order sent to the webhook")
        worker.send_signal(signal.SIGTERM)

        async def stopping() -> bool:
            assert worker.returncode is None, "".join(lines)
            return any("stopping:" in line for line in lines)

        # the worker has begun its shutdown and still waits for the running call
        await eventually(stopping, "the worker stopping")
        assert worker.returncode is None, "".join(lines)
        release.set()
        assert await asyncio.wait_for(worker.wait(), DEADLINE_SECONDS) == 0, "".join(lines)
        assert outcomes == ["answered"], "".join(lines)
    finally:
        release.set()
        await http.close()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        reader.cancel()
        await partner.close()
