"""Inventory timing on PostgreSQL: `python -m bench.inventory` from the repository root.

1. Bulk ingest: rows per second through `InventoryRepository.set_stock` (COPY into a
   temporary table, then one INSERT ... ON CONFLICT) for each `--rows` size, spread over
   `--locations` locations (location-major, as store feeds arrive), first into an empty
   inventory table (inserts) and then the same rows again (updates). Beside it a raw
   `COPY inventory_raw FROM STDIN (FORMAT csv)` of the same rows through the `psql`
   command line into an unindexed table with the inventory columns; the ratio is
   set_stock rows/s divided by raw COPY rows/s.
2. Availability: latency percentiles for one SKU over all locations: the raw SQL query
   (asyncpg, the ATP columns of one SKU: the statement the endpoint runs for one SKU),
   the parts of the endpoint (the key check and the rows with the answer's text, as
   store/direct.py and api/config_cache.py do them; the same through the SQLAlchemy
   repository, SQLite's path) and HTTP GET /v1/availability on an aiohttp test server
   over loopback, its answer read whole by the client, and also parsed with json.loads;
   the HTTP p99 over the raw query's.
3. Stock feed over HTTP: a `--feed-rows` CSV file (`location_id,sku,on_hand`) streamed
   with PUT /v1/inventory (text/csv) to the API run as its own process (`python -m
   api.main`) four times: into an empty inventory (every row new), the same file again
   (no level changes), the file with every third level changed, and a file with other
   levels for the same keys (every level changes). Beside them `psql` COPY of the same
   file into an unindexed table (the raw figure) and into a table with the inventory's
   two indexes; the ratios are psql seconds / API seconds. `--fillfactor` sets the
   inventory table's fillfactor first (room for updates on their page: HOT, no new index
   entries; the store's own is 70). Then, with `--rss-rows`, a feed of that many rows
   while the API's resident memory is sampled (peak RSS, and the process's VmHWM; the
   issue asks < 300 MB at 10M rows).

Everything runs in a throw-away database `oms_bench_<random>` created on the server of
`--database-url` and dropped at the end. Stock and SKUs are random but seeded. Figures
only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import URL, make_url

from activities.availability import serves
from api.app import init_app
from api.config_cache import ChannelView
from api.context import DIRECT_READS
from store import Store
from workers.settings import Settings
from workflows.model import LocationConfig, SalesChannelConfig

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_ROWS = (100_000, 1_000_000)
QUICK_ROWS = (20_000,)
DEFAULT_REQUESTS = 1_500  # keeps the default run within ~5 minutes on 2 cores
QUICK_REQUESTS = 200
WARMUP = 50
CHANNEL = "web"
WEB_KEY = f"bench-web-{uuid.uuid4().hex}"
ADMIN_KEY = f"bench-admin-{uuid.uuid4().hex}"
DEFAULT_FEED_ROWS = 1_000_000
FEED_RAW_TABLE = "CREATE TABLE feed_raw (location_id text, sku text, on_hand integer)"
# the same columns with the inventory table's two indexes: what any COPY into a table
# keyed and searched like the inventory pays
FEED_INDEXED_TABLE = """
CREATE TABLE feed_indexed (
    location_id text, sku text, on_hand integer, PRIMARY KEY (location_id, sku)
);
CREATE INDEX feed_indexed_sku ON feed_indexed (sku)
"""
RAW_TABLE = """
CREATE TABLE inventory_raw (
    location_id varchar(64) NOT NULL,
    sku varchar(64) NOT NULL,
    on_hand integer NOT NULL,
    reserved integer NOT NULL,
    updated_at timestamptz NOT NULL
)
"""
RAW_TIMESTAMP = "2024-01-01 00:00:00+00"


# ----------------------------------------------------------------------------- data


def location_ids(count: int) -> list[str]:
    return [f"LOC-{i:04d}" for i in range(count)]


def make_locations(rng: random.Random, ids: list[str]) -> list[LocationConfig]:
    """Every 10th a warehouse; a few disabled or serving another channel only."""
    locations = []
    for i, location_id in enumerate(ids):
        warehouse = i % 10 == 0
        locations.append(
            LocationConfig(
                location_id=location_id,
                name=f"Bench {location_id}",
                type="warehouse" if warehouse else "store",
                lat=rng.uniform(47.3, 55.0),
                lon=rng.uniform(6.0, 15.0),
                time_zone="Europe/Berlin",
                daily_capacity=rng.randint(200, 2_000) if warehouse else rng.randint(20, 200),
                priority=rng.randint(0, 5),
                enabled=rng.random() > 0.03,
                cost_per_shipment=round(rng.uniform(3.0, 12.0), 2),
                channels=["b2b"] if rng.random() < 0.05 else [],
            )
        )
    return locations


def make_channel(rng: random.Random, ids: list[str]) -> SalesChannelConfig:
    buffers = {"store": 2, "warehouse": 0} | {loc: 5 for loc in rng.sample(ids, 10)}
    return SalesChannelConfig(
        channel_id=CHANNEL,
        name="Bench webshop",
        excluded_locations=rng.sample(ids, 10),
        safety_buffers=buffers,
    )


def sku_ids(rows: int, locations: int) -> list[str]:
    return [f"SKU-{n:06d}" for n in range(math.ceil(rows / locations))]


def make_rows(rng: random.Random, rows: int, ids: list[str]) -> list[tuple[str, str, int]]:
    """`rows` (location, sku, on_hand), location-major: each location's SKUs in turn."""
    skus = sku_ids(rows, len(ids))
    out: list[tuple[str, str, int]] = []
    for loc in ids:
        for sku in skus:
            if len(out) == rows:
                return out
            out.append((loc, sku, rng.randint(0, 250)))
    return out


def write_csv(path: Path, rows: list[tuple[str, str, int]]) -> int:
    """The rows with every inventory column, as the raw COPY reads them; bytes written."""
    with path.open("w") as f:
        for loc, sku, qty in rows:
            f.write(f"{loc},{sku},{qty},0,{RAW_TIMESTAMP}\n")
    return path.stat().st_size


# ----------------------------------------------------------------------------- database


async def create_database(
    server_url: str,
) -> tuple[URL, Callable[[], Awaitable[None]]]:
    """A fresh `oms_bench_<random>` database and a coroutine that drops it."""
    admin = make_url(server_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = f"oms_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return admin.set(database=name), drop


async def psql_copy(url: URL, csv_path: Path) -> float:
    """Seconds for `psql -c 'COPY inventory_raw FROM STDIN (FORMAT csv)' < csv_path`,
    psql's start and connection included."""
    with csv_path.open("rb") as source:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url.render_as_string(hide_password=False),
            "-c",
            "COPY inventory_raw FROM STDIN (FORMAT csv)",
            stdin=source,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"psql COPY failed: {err.decode().strip()}")
    return elapsed


def write_feed(path: Path, rows: int, ids: list[str], seed: int, change_every: int = 0) -> int:
    """A stock feed as the API takes it (header, location-major); bytes written. Built
    line by line, so a 10M-row file costs no memory here either. With `change_every` n,
    every n-th line's level differs from the feed of the same seed (the rest equal)."""
    rng = random.Random(seed)
    skus = sku_ids(rows, len(ids))
    written = 0
    with path.open("w") as f:
        f.write("location_id,sku,on_hand\n")
        for loc in ids:
            for sku in skus:
                if written == rows:
                    return path.stat().st_size
                level = rng.randint(0, 250)
                if change_every and written % change_every == 0:
                    level = (level + 1) % 251
                f.write(f"{loc},{sku},{level}\n")
                written += 1
    return path.stat().st_size


async def psql_copy_feed(url: URL, csv_path: Path, table: str = "feed_raw") -> float:
    """Seconds for psql to COPY the feed file (header skipped) into `table`."""
    with csv_path.open("rb") as source:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url.render_as_string(hide_password=False),
            "-c",
            f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)",
            stdin=source,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"psql COPY failed: {err.decode().strip()}")
    return elapsed


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MB (Linux /proc; `VmHWM` for its peak so far), 0
    when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def put_feed(api_url: str, path: Path, pid: int) -> tuple[float, float, dict[str, Any]]:
    """Stream the file to PUT /v1/inventory; (seconds, peak RSS of the API in MB, answer)."""
    peak = rss_mb(pid)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.05)

    async def chunks() -> Any:
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            async with http.put(
                f"{api_url}/v1/inventory",
                data=chunks(),
                headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "text/csv"},
            ) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"PUT /v1/inventory: {resp.status} {answer}")
        return time.perf_counter() - t0, peak, answer
    finally:
        done.set()
        await sampler


async def bench_feed(
    url: URL,
    conn: asyncpg.Connection,
    ids: list[str],
    rows: int,
    rss_rows: int,
    seed: int,
    fillfactor: int = 0,
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="oms-feed-"))
    port = free_port()
    env = {
        **os.environ,
        "OMS_ENV": "development",
        "OMS_DATABASE_URL": url.set(drivername="postgresql+asyncpg").render_as_string(
            hide_password=False
        ),
        "OMS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # none: the feed needs none
        "OMS_API_HOST": "127.0.0.1",
        "OMS_API_PORT": str(port),
        "OMS_DATA_DIR": str(workdir),
        "OMS_LOG_LEVEL": "WARNING",
    }
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.main",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(workdir / "api.log").open("w"),
    )
    api_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{api_url}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or api.returncode is not None:
                    raise RuntimeError(f"the API did not start: {workdir / 'api.log'}")
                await asyncio.sleep(0.2)
        feed = workdir / "feed.csv"
        size = write_feed(feed, rows, ids, seed)
        await conn.execute(FEED_RAW_TABLE)
        await conn.execute(FEED_INDEXED_TABLE)
        await conn.execute("CHECKPOINT")
        raw = await psql_copy_feed(url, feed)
        await conn.execute("CHECKPOINT")
        indexed = await psql_copy_feed(url, feed, "feed_indexed")
        await conn.execute("DROP TABLE feed_raw, feed_indexed")
        print(
            f"\n3. stock feed over HTTP: {rows:,} rows ({size / 1e6:,.0f} MB CSV), "
            f"{len(ids):,} locations; ratio = psql COPY seconds / API seconds"
        )
        header = (
            f"{'path':<58} {'seconds':>8} {'rows/s':>12} {'peak RSS':>9} {'/ raw':>6} {'/ idx':>6}"
        )
        print(header)
        print("-" * len(header))
        print(f"{'raw: psql COPY into an unindexed table':<58} {raw:>8.2f} {rate(rows, raw)}")
        print(
            f"{'psql COPY into a table with the inventory indexes':<58} {indexed:>8.2f} "
            f"{rate(rows, indexed)}"
        )
        # the feed into an empty inventory (every row new), the same feed again (nothing
        # changes), a third of the levels changed and other levels for the same keys
        if fillfactor:
            # room on each page for new versions of its rows: an update that changes no
            # indexed column then stays on the page and writes no index entry (HOT)
            await conn.execute(f"ALTER TABLE inventory SET (fillfactor = {fillfactor})")
            print(f"   inventory table fillfactor {fillfactor}")
        await conn.execute("TRUNCATE inventory")
        other = workdir / "other.csv"
        write_feed(other, rows, ids, seed + 2)
        third = workdir / "third.csv"
        write_feed(third, rows, ids, seed, change_every=3)
        answer: dict[str, Any] = {}
        for label, path in (
            ("PUT /v1/inventory text/csv: new rows", feed),
            ("PUT /v1/inventory text/csv: the same feed again", feed),
            ("PUT /v1/inventory text/csv: a third of the levels changed", third),
            ("PUT /v1/inventory text/csv: every level changed", other),
        ):
            await conn.execute("CHECKPOINT")
            seconds, peak, answer = await put_feed(api_url, path, api.pid)
            print(
                f"{label:<58} {seconds:>8.2f} {rate(rows, seconds)} {peak:>6.0f} MB "
                f"{raw / seconds:>6.2f} {indexed / seconds:>6.2f}"
            )
        print(f"   answered {answer}")
        if rss_rows:
            feed.unlink()
            other.unlink()
            third.unlink()
            size = write_feed(feed, rss_rows, ids, seed + 1)
            seconds, peak, _ = await put_feed(api_url, feed, api.pid)
            print(
                f"   {rss_rows:,} rows ({size / 1e6:,.0f} MB): {seconds:.1f} s, "
                f"{rate(rss_rows, seconds).strip()} rows/s; API resident memory: sampled "
                f"peak {peak:.0f} MB, VmHWM (peak since start) {rss_mb(api.pid, 'VmHWM'):.0f} MB"
            )
    finally:
        api.terminate()
        try:
            await asyncio.wait_for(api.wait(), 20)
        except TimeoutError:
            api.kill()
        shutil.rmtree(workdir, ignore_errors=True)


# ----------------------------------------------------------------------------- figures


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    return f"{p50:>8.2f} {p95:>8.2f} {p99:>8.2f} {max(samples):>8.2f}"


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f}"


async def bench_ingest(
    store: Store, conn: asyncpg.Connection, url: URL, sizes: list[int], ids: list[str], seed: int
) -> None:
    print(
        f"\n1. bulk ingest, {len(ids):,} locations, location-major feed; rows/s "
        "(seconds); ratio = set_stock rows/s / raw COPY rows/s"
    )
    header = (
        f"{'rows':>10} {'skus':>6}  {'set_stock insert':>22} {'set_stock update':>22} "
        f"{'raw COPY (psql)':>22}  {'ins/raw':>7} {'upd/raw':>7}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="oms-bench-") as tmp:
        csv_path = Path(tmp) / "stock.csv"
        for size in sizes:
            rows = make_rows(random.Random(seed * 1_000 + size), size, ids)
            await asyncio.to_thread(write_csv, csv_path, rows)
            timings: list[float] = []
            await conn.execute("TRUNCATE inventory")
            for _ in ("insert", "update"):
                await conn.execute("CHECKPOINT")
                t0 = time.perf_counter()
                await store.inventory.set_stock(rows)
                timings.append(time.perf_counter() - t0)
            stored = await conn.fetchval("SELECT count(*) FROM inventory")
            if stored != len(rows):
                raise RuntimeError(f"inventory holds {stored} rows, expected {len(rows)}")
            await conn.execute("TRUNCATE inventory_raw")
            await conn.execute("CHECKPOINT")
            raw = await psql_copy(url, csv_path)
            copied = await conn.fetchval("SELECT count(*) FROM inventory_raw")
            if copied != len(rows):
                raise RuntimeError(f"inventory_raw holds {copied} rows, expected {len(rows)}")
            insert, update = timings
            cells = [f"{rate(size, t)} ({t:>6.2f} s)" for t in (insert, update, raw)]
            print(
                f"{size:>10,} {math.ceil(size / len(ids)):>6,}  {cells[0]:>22} {cells[1]:>22} "
                f"{cells[2]:>22}  {raw / insert:>7.2f} {raw / update:>7.2f}"
            )
    await conn.execute("TRUNCATE inventory_raw")


async def time_calls(
    call: Callable[[str], Awaitable[object]], skus: list[str], requests: int, seed: int
) -> tuple[list[float], int]:
    """Latencies in ms, and how many full (generation 2) garbage collections ran."""
    rng = random.Random(seed)
    for _ in range(WARMUP):
        await call(rng.choice(skus))
    full_collections = gc.get_stats()[2]["collections"]
    samples: list[float] = []
    for _ in range(requests):
        sku = rng.choice(skus)
        t0 = time.perf_counter()
        await call(sku)
        samples.append((time.perf_counter() - t0) * 1_000)
    return samples, gc.get_stats()[2]["collections"] - full_collections


async def bench_availability(
    store: Store, url: URL, skus: list[str], locations: int, requests: int, seed: int
) -> None:
    channel = SalesChannelConfig.model_validate(await store.config.channel(CHANNEL))
    parsed = {
        loc["location_id"]: LocationConfig.model_validate(loc)
        for loc in await store.config.locations()
    }
    served = sum(serves(loc, channel) for loc in parsed.values())
    view = ChannelView.of(parsed, channel)

    async def raw_query(sku: str) -> object:
        return await raw.fetch(
            "SELECT location_id, on_hand, reserved FROM inventory WHERE sku = $1", sku
        )

    async def key_check(sku: str) -> object:
        return await direct.principal(WEB_KEY)

    async def direct_answer(sku: str) -> object:
        # the handler's work past HTTP and the key check: the rows of the SKU in one
        # statement on the API's direct pool, then the answer's text
        return view.answer((await direct.stock([sku])).get(sku, ()))

    async def repository_answer(sku: str) -> object:
        # the same through the SQLAlchemy repository, as on SQLite
        return view.answer(
            [(r.location_id, r.on_hand, r.reserved) for r in await store.inventory.stock([sku])]
        )

    settings = Settings(
        database_url=url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        bootstrap_admin_key="",
    )
    # availability never touches Temporal; init_app() would connect to a Temporal server
    # when given no client, so it gets a placeholder object instead of a Client
    app = init_app(settings, store=store, client=object())  # type: ignore[arg-type]
    raw = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    http = TestClient(TestServer(app))
    await http.start_server()  # the app's startup: its direct reads, gc.freeze()
    direct = app[DIRECT_READS]
    headers = {"Authorization": f"Bearer {WEB_KEY}"}

    availability_url = http.make_url("/v1/availability")

    async def http_get(sku: str) -> object:
        # the client's own session: TestClient.get keeps every response until it closes
        # (for its clean-up), which grows the heap the garbage collector walks
        async with http.session.get(availability_url, params={"sku": sku}, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET /v1/availability: {resp.status} {body[:500]!r}")
            return body

    async def http_get_json(sku: str) -> object:
        return json.loads(cast(bytes, await http_get(sku)))

    try:
        probe: Any = await http_get_json(skus[0])
        returned = len(probe["items"][0]["locations"])
        print(
            f"\n2. availability of one SKU (random among {len(skus):,}) over {locations:,} "
            f"locations ({served:,} serve channel {CHANNEL!r}, {returned:,} in the answer); "
            f"sequential calls after {WARMUP} warm-up; ms"
        )
        header = (
            f"{'path':<60} {'calls':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'gen2 GCs':>9}"
        )
        print(header)
        print("-" * len(header))
        # the middle rows explain the gap between the raw query and HTTP; fewer calls of
        # the slow repository path keep the default run within a few minutes
        cases: list[tuple[str, int, Callable[[str], Awaitable[object]]]] = [
            ("raw SQL: one SKU's rows (asyncpg)", requests, raw_query),
            ("key check: one statement (store/direct.py)", requests, key_check),
            ("rows + answer text: direct read (the handler's work)", requests, direct_answer),
            (
                "rows + answer text: SQLAlchemy repository (SQLite's path)",
                max(requests // 8, 2),
                repository_answer,
            ),
            ("HTTP GET /v1/availability (aiohttp test server)", requests, http_get),
            ("HTTP GET /v1/availability + json.loads in the client", requests, http_get_json),
        ]
        p99s: dict[str, float] = {}
        for n, (label, calls, call) in enumerate(cases):
            samples, full_collections = await time_calls(call, skus, calls, seed + n)
            p99s[label] = statistics.quantiles(samples, n=100, method="inclusive")[98]
            print(f"{label:<60} {calls:>6,} {percentiles(samples)} {full_collections:>9,}")
        raw_p99 = p99s[cases[0][0]]
        print(
            f"   HTTP p99 / raw SQL p99 = {p99s[cases[-2][0]] / raw_p99:.2f} "
            f"({p99s[cases[-1][0]] / raw_p99:.2f} with the client's json.loads)"
        )
    finally:
        await http.close()
        await raw.close()
    print(
        "   HTTP: init_app() with its middlewares (errors, metrics, input checks, the key\n"
        "   looked up on every request) over loopback; the answer read whole by the client\n"
        "   (the last row also parses it with json.loads: the client's own cost); the\n"
        "   Temporal client is a placeholder object (availability does not use it; no\n"
        "   Temporal server runs).\n"
        "   gen2 GCs: full Python garbage collections during the timed calls (each one pauses\n"
        "   the event loop; the app freezes what is alive at its start, so they are short)."
    )


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    sizes = sorted(set(args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)))
    requests = args.requests or (QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS)
    url, drop = await create_database(args.database_url)
    dsn = url.render_as_string(hide_password=False)
    store: Store | None = None
    conn: asyncpg.Connection | None = None
    try:
        store_url = url.set(drivername="postgresql+asyncpg")
        store = await Store.open(store_url.render_as_string(hide_password=False))
        conn = await asyncpg.connect(dsn)
        version = await conn.fetchval("SELECT version()")
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{version.split(',')[0]}; load average at start "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(f"database: {url.database} (throw-away, dropped at the end)")
        ids = location_ids(args.locations)
        rng = random.Random(args.seed)
        await store.config.upsert_locations([loc.model_dump() for loc in make_locations(rng, ids)])
        await store.config.upsert_channels([make_channel(rng, ids).model_dump(mode="json")])
        await store.config.upsert_api_key(
            WEB_KEY, name="bench web", role="webshop", identity=CHANNEL
        )
        await store.config.upsert_api_key(ADMIN_KEY, name="bench admin", role="admin", identity="")
        await conn.execute(RAW_TABLE)
        await bench_ingest(store, conn, url, sizes, ids, args.seed)
        # the availability phase reads the largest feed, analyzed as autovacuum would
        await conn.execute("VACUUM (ANALYZE) inventory")
        skus = sku_ids(sizes[-1], len(ids))
        await bench_availability(store, url, skus, len(ids), requests, args.seed)
        if args.feed_rows:
            await bench_feed(
                url, conn, ids, args.feed_rows, args.rss_rows, args.seed, args.fillfactor
            )
    finally:
        if conn is not None:
            await conn.close()
        if store is not None:
            await store.close()
        await drop()
    print(f"\ntotal {time.perf_counter() - started:.1f} s; dropped database {url.database}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        help=f"stock rows per feed (default {' '.join(map(str, DEFAULT_ROWS))})",
    )
    parser.add_argument("--locations", type=int, default=1_000)
    parser.add_argument("--requests", type=int, help=f"default {DEFAULT_REQUESTS}")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_ROWS[0]:,} rows, {QUICK_REQUESTS} requests",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="server for the bench db")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--feed-rows",
        type=int,
        help=f"rows of the HTTP stock feed (default {DEFAULT_FEED_ROWS:,}; --quick 20,000; "
        "0 skips it)",
    )
    parser.add_argument(
        "--rss-rows",
        type=int,
        default=0,
        help="then a feed of this many rows measuring the API's peak RSS (10000000 for the "
        "issue's figure; 0 skips it)",
    )
    parser.add_argument(
        "--fillfactor",
        type=int,
        default=0,
        help="the inventory table's fillfactor for the HTTP feeds (10-100; default: the "
        "store's own, 70 since revision 0007)",
    )
    args = parser.parse_args()
    if args.fillfactor and not 10 <= args.fillfactor <= 100:
        parser.error("--fillfactor must be from 10 to 100")
    if args.feed_rows is None:
        args.feed_rows = QUICK_ROWS[0] if args.quick else DEFAULT_FEED_ROWS
    if args.locations < 1 or any(n < 1 for n in args.rows or ()):
        parser.error("--rows and --locations must be positive")
    if args.requests is not None and args.requests < 2:
        parser.error("--requests must be at least 2")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
