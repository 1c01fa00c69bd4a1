"""Fault scenarios under bounded load against a stack the harness starts itself.

    python -m tests.chaos.faults --orders 20 --fault all
    python -m tests.chaos.faults --fault worker_kill,db_block --orders 8

Faults, one after another on the same stack (each with its own orders and SKUs):

- worker_kill: the worker is killed with SIGKILL three times during the load and started
  again each time;
- server_term / server_kill: the Temporal dev server is stopped with SIGTERM / SIGKILL,
  left down for a few seconds and started again on its state file;
- db_block: the store's database refuses connections for 20 s (its sessions terminated,
  `ALLOW_CONNECTIONS false`), then accepts them again; the PostgreSQL server keeps running;
- webhook_500: WH-BERLIN's webhook answers 500 for a while, then 200;
- webhook_404: WH-BERLIN's webhook answers 404, so its orders go ON_HOLD; the operator
  fixes the webhook and resumes them (README runbook), then the orders carry on.

The web shop places orders over HTTP while the fault happens (half of them go to WH-BERLIN,
whose system gets its work orders over the webhook, half to WH-MUNICH, which works from its
work-order list) and cancels a share; the locations pick, ship and deliver.

After the fault, within a deadline: every accepted order is DELIVERED, CANCELLED or
COMPLETED in the store's view; stock is conserved and no reservation is left
(tests/integration/invariants.py); at most one current release per line; no workflow
Failed, Terminated or TimedOut, and no failed workflow task in the orders' histories; the
API answered no 5xx other than a 503 with an error code and Retry-After, never failed to
answer and never took longer than the hang bound; the worker, the API and the dev server
never exited unasked. One table line per fault; the exit code is 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from store import Store
from tests.chaos.load import TERMINAL, Api, Locations, Shop, order_views, resume_refused
from tests.chaos.stack import (
    POLLING_LOCATION,
    WEBHOOK_LOCATION,
    ChaosStack,
    PostgresUnreachable,
    chaos_stack,
    until,
)
from tests.integration.invariants import (
    Violation,
    check_no_live_reservations,
    check_releases,
    check_stock,
    read_store,
    workflow_runs,
)
from workflows.order import order_workflow_id

FAULTS = ("worker_kill", "server_term", "server_kill", "db_block", "webhook_500", "webhook_404")
BAD_ENDINGS = (
    'ExecutionStatus="Failed" OR ExecutionStatus="Terminated" OR ExecutionStatus="TimedOut"'
)
SHOWN = 8  # failures listed per check


@dataclass(frozen=True)
class Params:
    orders: int = 20  # per fault
    load_seconds: float = 15.0  # the orders are placed over this long
    cancel_share: float = 0.25
    deadline_seconds: float = 240.0  # after the fault: every accepted order terminal by then
    hang_seconds: float = 15.0  # an answer slower than this is a hang
    request_timeout: float = 60.0  # the client gives up (counted as no answer)
    block_seconds: float = 20.0
    server_down_seconds: float = 5.0
    webhook_seconds: float = 15.0  # how long the webhook fails or refuses
    seed: int = 1


@dataclass
class FaultResult:
    fault: str
    placed: int = 0
    accepted: int = 0
    terminal: int = 0
    broken: int = 0  # 5xx other than a promised 503, and requests without an answer
    outages: int = 0  # 503 with an error code and Retry-After
    pending: int = 0  # 202
    longest: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


class Scenario:
    """What a fault action needs: the stack, the time since the load started, notes."""

    def __init__(self, stack: ChaosStack, params: Params, result: FaultResult) -> None:
        self.stack = stack
        self.params = params
        self.result = result
        self.started = time.monotonic()
        self.resumed: list[str] = []

    def note(self, text: str) -> None:
        self.result.timeline.append(f"t+{time.monotonic() - self.started:5.1f}s {text}")

    async def at(self, share: float) -> None:
        """Wait until `share` of the load window has passed."""
        due = self.started + share * self.params.load_seconds
        await asyncio.sleep(max(0.0, due - time.monotonic()))


# ---------------------------------------------------------------------------- the faults
async def worker_kill(s: Scenario) -> None:
    for n, share in enumerate((0.15, 0.45, 0.75), start=1):
        await s.at(share)
        pid = s.stack.worker.pid
        code = await s.stack.kill_worker()
        s.note(f"worker {pid} SIGKILL #{n} (exit {code})")
        await s.stack.start_worker()
        s.note(f"worker {s.stack.worker.pid} started and polling")


async def _server_restart(s: Scenario, sig: signal.Signals) -> None:
    await s.at(0.3)
    pid = s.stack.server.pid
    s.note(f"dev server {pid} {sig.name}")
    code = await s.stack.restart_server(sig, s.params.server_down_seconds)
    s.note(
        f"dev server exited {code}, down {s.params.server_down_seconds:g}s, "
        f"{s.stack.server.pid} started and reachable"
    )


async def server_term(s: Scenario) -> None:
    await _server_restart(s, signal.SIGTERM)


async def server_kill(s: Scenario) -> None:
    await _server_restart(s, signal.SIGKILL)


async def db_block(s: Scenario) -> None:
    await s.at(0.2)
    await s.stack.blocked.block()
    s.note(f"database {s.stack.blocked.name} blocked, its sessions terminated")
    try:
        await asyncio.sleep(s.params.block_seconds)
    finally:
        await s.stack.blocked.restore()
    s.note("database accepts connections again")


async def _webhook_down(s: Scenario, mode: str) -> None:
    s.stack.webhook.mode = mode
    s.note(f"{WEBHOOK_LOCATION} webhook answers {mode}")
    await asyncio.sleep(max(s.params.webhook_seconds, 0.0))
    s.stack.webhook.mode = "ok"
    s.note(f"{WEBHOOK_LOCATION} webhook fixed (answers 200)")


async def webhook_500(s: Scenario) -> None:
    await _webhook_down(s, "500")


async def webhook_404(s: Scenario) -> None:
    await _webhook_down(s, "404")


ACTIONS: dict[str, Callable[[Scenario], Awaitable[None]]] = {
    "worker_kill": worker_kill,
    "server_term": server_term,
    "server_kill": server_kill,
    "db_block": db_block,
    "webhook_500": webhook_500,
    "webhook_404": webhook_404,
}


# ---------------------------------------------------------------------------- one fault
def _listed(title: str, items: Sequence[object]) -> str:
    shown = "; ".join(str(i) for i in items[:SHOWN])
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return f"{title} ({len(items)}): {shown}{more}"


async def _set_stock(api: Api, rows: list[dict[str, Any]], within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        status, body, wait = await api.call(
            "PUT", "/v1/inventory", what="PUT /v1/inventory", key="admin", json=rows
        )
        if status == 200:
            return
        if loop.time() > deadline:
            raise RuntimeError(f"could not set the stock: {status} {body}")
        await asyncio.sleep(wait)


async def _bad_workflows(stack: ChaosStack) -> dict[str, str]:
    client = await Client.connect(
        stack.settings.temporal_address, namespace=stack.settings.temporal_namespace
    )
    return {
        wf.id: f"{wf.id} ({wf.workflow_type}) {wf.status.name if wf.status else '?'}"
        async for wf in client.list_workflows(BAD_ENDINGS)
    }


async def run_fault(
    stack: ChaosStack, api: Api, name: str, params: Params, seen_bad: dict[str, str]
) -> FaultResult:
    result = FaultResult(name)
    api.phase = name
    rng = random.Random(f"{params.seed}-{name}")
    run = uuid.uuid4().hex[:6]
    skus = {
        WEBHOOK_LOCATION: f"CH-{run}-{name}-B",
        POLLING_LOCATION: f"CH-{run}-{name}-M",
    }
    initial = {(loc, sku): 2 * params.orders + 5 for loc, sku in skus.items()}
    await until(lambda: _ready(api), f"{name}: the stack ready before the fault", within=120)
    await _set_stock(
        api,
        [{"location_id": loc, "sku": sku, "on_hand": q} for (loc, sku), q in initial.items()],
        within=60,
    )
    answers_before = len(api.answers)
    shop = Shop(
        api,
        rng,
        prefix=f"CH-{run}-{name}",
        orders=params.orders,
        seconds=params.load_seconds,
        cancel_share=params.cancel_share,
        skus=skus,
    )
    scenario = Scenario(stack, params, result)
    fault_window = params.load_seconds + params.block_seconds + params.webhook_seconds + 60
    await asyncio.gather(shop.run(retry_seconds=fault_window), ACTIONS[name](scenario))
    scenario.note("load placed and fault over")

    accepted = [o for o in shop.orders if o.accepted]
    ids = [o.order_id for o in accepted]
    statuses = await _wait_terminal(api, scenario, ids)
    counts = Counter(statuses.values())
    scenario.note(
        f"{sum(s in TERMINAL for s in statuses.values())}/{len(ids)} orders terminal: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    )

    result.placed = len(shop.orders)
    result.accepted = len(accepted)
    result.terminal = sum(s in TERMINAL for s in statuses.values())
    failures = result.failures
    never = [f"{o.order_id} answered {o.creates}" for o in shop.orders if not o.accepted]
    if never:
        failures.append(_listed("orders never accepted", never))
    stuck_ids = [i for i in ids if statuses.get(i) not in TERMINAL]
    if stuck_ids:
        views = await order_views(api, stuck_ids)
        failures.append(_listed("orders not terminal by the deadline", _stuck(stuck_ids, views)))

    # stock and releases, from the store's tables
    store = await Store.open(stack.database_url)
    try:
        facts = await read_store(store, list(skus.values()), ids, "chaos-no-adjustments:")
    finally:
        await store.close()
    violations: list[Violation] = check_stock(facts, initial, list(skus.values()))
    violations += check_releases(facts)
    if not stuck_ids:
        violations += check_no_live_reservations(facts, dict(statuses))
    if violations:
        failures.append(_listed("invariants broken", violations))

    # workflows: none failed, terminated or timed out; no failed workflow task
    bad = await _bad_workflows(stack)
    new_bad = [text for wf_id, text in bad.items() if wf_id not in seen_bad]
    seen_bad.update(bad)
    if new_bad:
        failures.append(_listed("workflows ended badly", new_bad))
    client = await Client.connect(
        stack.settings.temporal_address, namespace=stack.settings.temporal_namespace
    )
    task_failures = []
    for order_id in ids:
        for wf_run in await workflow_runs(client, order_workflow_id(order_id)):
            task_failures += [f"{wf_run.workflow_id}: {f}" for f in wf_run.failures]
    if task_failures:
        failures.append(_listed("workflow failures in histories", task_failures))

    # what the API answered
    answers = api.answers[answers_before:]
    result.broken = sum(a.broken for a in answers)
    result.outages = sum(a.outage for a in answers)
    result.pending = sum(a.status == 202 for a in answers)
    result.longest = max((a.seconds for a in answers), default=0.0)
    kinds = Counter(f"{a.status}{' ' + a.code if a.code else ''}" for a in answers)
    scenario.note(
        f"{len(answers)} requests answered: "
        + ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    )
    pending = [c for c in api.commands if c.phase == name]
    if pending:
        slowest = max(pending, key=lambda c: c.seconds)
        scenario.note(
            f"{len(pending)} commands answered 202; outcome known after up to "
            f"{slowest.seconds:.0f}s ({slowest})"
        )
    unknown = [c for c in pending if c.outcome.startswith("202")]
    if unknown:
        failures.append(_listed("commands whose outcome never became known", unknown))
    broken = [a for a in answers if a.broken]
    if broken:
        failures.append(
            _listed("5xx other than 503 with code and Retry-After, or no answer", broken)
        )
    slow = sorted((a for a in answers if a.seconds > params.hang_seconds), key=lambda a: -a.seconds)
    if slow:
        failures.append(_listed(f"answers slower than {params.hang_seconds:g}s", slow))

    # the processes the harness did not stop
    for child in stack.children():
        code = child.unexpected_exit()
        if code is not None:
            failures.append(f"{child.name} exited with {code} unasked:\n{child.tail()}")
            await (stack.start_worker() if child is stack.worker else child.start())
    if stack.webhook.bad_signatures:
        failures.append(f"{stack.webhook.bad_signatures} webhook messages badly signed")

    # the fault must have happened, or the scenario proved nothing
    failures += _fault_took_effect(name, stack, answers, scenario)
    result.seconds = time.monotonic() - scenario.started
    return result


def _stuck(ids: list[str], views: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for order_id in ids:
        view = views.get(order_id)
        if view is None:
            out.append(f"{order_id} (view not readable)")
            continue
        events = [e["type"] for e in view.get("events", [])][-5:]
        out.append(
            f"{order_id} {view.get('status')} hold_reasons={view.get('hold_reasons')} "
            f"last events={events}"
        )
    return out


async def _ready(api: Api) -> bool:
    status, _, _ = await api.call("GET", "/ready", what="GET /ready", key="ops")
    return status == 200


async def _wait_terminal(api: Api, scenario: Scenario, ids: list[str]) -> dict[str, str]:
    """Poll the order views until every order is terminal or the deadline passes. In
    webhook_404 the operator resumes the orders held by the refused work orders."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scenario.params.deadline_seconds
    statuses: dict[str, str] = {}
    while True:
        if scenario.result.fault == "webhook_404":
            resumed = await resume_refused(api, set(ids))
            if resumed:
                scenario.resumed += resumed
                scenario.note(f"operator resumed {len(resumed)} held orders")
        for order_id in ids:
            if statuses.get(order_id) in TERMINAL:
                continue
            status, view, _ = await api.call(
                "GET", f"/v1/orders/{order_id}", what="GET /v1/orders/{id}", key="ops"
            )
            if status == 200 and isinstance(view, dict):
                statuses[order_id] = str(view["status"])
        if all(statuses.get(i) in TERMINAL for i in ids) or loop.time() > deadline:
            return statuses
        await asyncio.sleep(1.0)


def _fault_took_effect(
    name: str, stack: ChaosStack, answers: list[Any], scenario: Scenario
) -> list[str]:
    if name == "db_block" and not any(a.code == "store_unavailable" for a in answers):
        return ["no 503 store_unavailable seen while the database was blocked"]
    if name == "webhook_500" and not stack.webhook.answers[("work_order", 500)]:
        return ["the webhook never answered a work order with 500 (no order reached it)"]
    if name == "webhook_404":
        if not stack.webhook.answers[("work_order", 404)]:
            return ["the webhook never answered a work order with 404 (no order reached it)"]
        if not scenario.resumed:
            return ["no order went ON_HOLD for the refused work order (nothing to resume)"]
    return []


# ---------------------------------------------------------------------------- the run
async def run_faults(
    faults: Sequence[str], params: Params, workdir: Path, out: Callable[[str], None] = print
) -> list[FaultResult]:
    results: list[FaultResult] = []
    async with chaos_stack(workdir) as stack:
        out(
            f"chaos: stack up (dev server {stack.settings.temporal_address}, API "
            f"{stack.api_url}, database {stack.blocked.name}, logs in {workdir})"
        )
        async with Api(stack.api_url, params.request_timeout) as api:
            stop = asyncio.Event()
            locations = asyncio.create_task(Locations(api, stack.webhook).run(stop))
            seen_bad: dict[str, str] = {}
            try:
                for name in faults:
                    out(f"chaos: {name} ...")
                    result = await run_fault(stack, api, name, params, seen_bad)
                    results.append(result)
                    out(table_line(result))
            finally:
                stop.set()
                await locations
                _write_answers(api, workdir / "answers.csv")
    return results


def _write_answers(api: Api, path: Path) -> None:
    """Every request of the run, for a closer look at a failure."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "request", "status", "code", "retry_after", "seconds", "error"])
        for a in api.answers:
            writer.writerow(
                [a.phase, a.what, a.status, a.code, a.retry_after, f"{a.seconds:.3f}", a.error]
            )


HEADER = (
    f"{'fault':<12} {'placed':>6} {'accepted':>8} {'terminal':>8} {'5xx':>4} {'503':>4} "
    f"{'202':>4} {'longest':>8} {'took':>6}  result"
)


def table_line(r: FaultResult) -> str:
    return (
        f"{r.fault:<12} {r.placed:>6} {r.accepted:>8} {r.terminal:>8} {r.broken:>4} "
        f"{r.outages:>4} {r.pending:>4} {r.longest:>7.1f}s {r.seconds:>5.0f}s  "
        f"{'PASS' if r.passed else 'FAIL'}"
    )


def report(results: Sequence[FaultResult]) -> str:
    lines = [HEADER, *(table_line(r) for r in results)]
    lines.append(
        "(5xx: 5xx answers other than a 503 with an error code and Retry-After, and "
        "requests without an answer; 503: promised outage answers; longest: slowest answer)"
    )
    for r in results:
        lines.append(f"-- {r.fault}: " + ("PASS" if r.passed else "FAIL"))
        lines += [f"   {t}" for t in r.timeline]
        lines += [f"   FAIL {f}" for f in r.failures]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> tuple[list[str], Params, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.faults", description=__doc__.split("\n\n")[0]
    )
    defaults = Params()
    parser.add_argument("--fault", default="all", help=f"all, or a comma list of {FAULTS}")
    parser.add_argument("--orders", type=int, default=defaults.orders, help="per fault")
    parser.add_argument("--load-seconds", type=float, default=defaults.load_seconds)
    parser.add_argument("--cancel-share", type=float, default=defaults.cancel_share)
    parser.add_argument("--deadline", type=float, default=defaults.deadline_seconds)
    parser.add_argument("--hang-seconds", type=float, default=defaults.hang_seconds)
    parser.add_argument("--block-seconds", type=float, default=defaults.block_seconds)
    parser.add_argument("--server-down-seconds", type=float, default=defaults.server_down_seconds)
    parser.add_argument("--webhook-seconds", type=float, default=defaults.webhook_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    args = parser.parse_args(argv)
    faults = list(FAULTS) if args.fault == "all" else args.fault.split(",")
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    params = Params(
        orders=args.orders,
        load_seconds=args.load_seconds,
        cancel_share=args.cancel_share,
        deadline_seconds=args.deadline,
        hang_seconds=args.hang_seconds,
        block_seconds=args.block_seconds,
        server_down_seconds=args.server_down_seconds,
        webhook_seconds=args.webhook_seconds,
        seed=args.seed,
    )
    return faults, params, args.keep


def main(argv: Sequence[str] | None = None) -> int:
    faults, params, keep = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="oms-chaos-"))
    try:
        results = asyncio.run(run_faults(faults, params, workdir))
    except PostgresUnreachable as err:
        print(f"chaos: {err}; the fault scenarios need PostgreSQL", file=sys.stderr)
        return 2
    print(report(results), flush=True)
    passed = all(r.passed for r in results)
    if passed and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"chaos: logs of the dev server, worker and API, and every answer, in {workdir}")
    print(f"chaos: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
