"""The order invariants of DESIGN.md section 3, checked over a set of orders and SKUs.

Used by the randomized interleaving test (test_interleavings.py) after the orders have
settled: every check reads what users and operators see (the order view over HTTP, the
store's tables, the workflows in Temporal) and returns violations instead of failing at
the first one, so one run reports everything it broke.

Also here: when is an order "settled" (its workflow and its releases have no work in
flight, only waits for an outside message or a long timer), read from the histories.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from store import Store
from store.tables import (
    Inventory,
    InventoryAdjustment,
    OrderEvent,
    OrderLine,
    OrderRelease,
    Reservation,
    Return,
    Shipment,
)
from workflows import search

E = EventType
TERMINAL = ("CANCELLED", "COMPLETED")
# statuses after which an order holds no stock any more
CLOSED_FOR_STOCK = (
    "CANCELLED",
    "DECLINED",
    "DELIVERED",
    "PARTIALLY_RETURNED",
    "RETURNED",
    "COMPLETED",
)
# statuses the test drives every order to in the end (DELIVERED waits for its return window)
ENDED = ("CANCELLED", "COMPLETED", "DELIVERED", "PARTIALLY_RETURNED", "RETURNED")
LIVE_RESERVATION = ("ACTIVE", "PICKED")
# a timer at most this long is the workflow's own next step (a backorder retry), not a wait
# for the outside world (return window, approval timeout)
SHORT_TIMER = timedelta(seconds=120)
# events written with a workflow task's completion that leave no work in flight
QUIET = {
    E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    E.EVENT_TYPE_MARKER_RECORDED,
    E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    E.EVENT_TYPE_TIMER_STARTED,
    E.EVENT_TYPE_TIMER_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}
CLOSED = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "FAILED",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
}
# workflow task failures the server causes in normal operation (a signal or an update
# arriving while the task completes the workflow, a sticky queue reset): the server runs
# the task again; not a defect of the workflow
BENIGN_TASK_FAILURES = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_UPDATE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE,
}


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str  # "order X", "sku S at L", "workflow W"
    detail: str
    order_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.detail}"


# ---------------------------------------------------------------------------- workflows
@dataclass
class WorkflowRun:
    """What one workflow's history says: closed how, busy with what, failures."""

    workflow_id: str
    events: int
    closed: str | None  # COMPLETED, FAILED, ... or None while running
    busy: str | None  # why it is not settled, None when it only waits for the outside
    failures: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


def read_history(workflow_id: str, history: Sequence[HistoryEvent]) -> WorkflowRun:
    closed = CLOSED.get(history[-1].event_type) if history else None
    failures = []
    children = []
    timers: dict[int, timedelta] = {}
    last_done = -1
    for i, e in enumerate(history):
        kind = e.event_type
        if kind == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_done = i
        elif kind == E.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = e.workflow_task_failed_event_attributes
            if attrs.cause not in BENIGN_TASK_FAILURES:
                cause = WorkflowTaskFailedCause.Name(attrs.cause)
                failures.append(f"workflow task failed ({cause}): {attrs.failure.message}")
        elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            children.append(e.start_child_workflow_execution_initiated_event_attributes.workflow_id)
        elif kind == E.EVENT_TYPE_TIMER_STARTED:
            fire = e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            timers[e.event_id] = fire
        elif kind == E.EVENT_TYPE_TIMER_FIRED:
            timers.pop(e.timer_fired_event_attributes.started_event_id, None)
        elif kind == E.EVENT_TYPE_TIMER_CANCELED:
            timers.pop(e.timer_canceled_event_attributes.started_event_id, None)
    if closed is not None and closed not in ("COMPLETED", "CONTINUED_AS_NEW"):
        attrs_failure = ""
        if history[-1].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            attrs_failure = (
                ": " + history[-1].workflow_execution_failed_event_attributes.failure.message
            )
        failures.append(f"workflow closed {closed}{attrs_failure}")
    busy: str | None = None
    if closed is None:
        if last_done < 0:
            busy = "no workflow task completed yet"
        else:
            pending = [
                E.Name(e.event_type).removeprefix("EVENT_TYPE_")
                for e in history[last_done + 1 :]
                if e.event_type not in QUIET
            ]
            short = sorted(t for t in timers.values() if t <= SHORT_TIMER)
            if pending:
                busy = "in flight: " + ", ".join(pending)
            elif short:
                busy = f"timer of {short[0].total_seconds():g}s running"
    return WorkflowRun(workflow_id, len(history), closed, busy, failures, children)


async def workflow_runs(
    client: Client, order_workflow_id: str, release_ids: Iterable[str] = ()
) -> list[WorkflowRun]:
    """The order's workflow (its latest run) and every release it started, found in its
    history or given (releases of earlier runs, after a continue-as-new)."""
    runs: list[WorkflowRun] = []
    ids = [order_workflow_id, *release_ids]
    seen: set[str] = set()
    while ids:
        wf_id = ids.pop(0)
        if wf_id in seen:
            continue
        seen.add(wf_id)
        try:
            history = await client.get_workflow_handle(wf_id).fetch_history()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            runs.append(WorkflowRun(wf_id, 0, None, "not found (yet)"))
            continue
        run = read_history(wf_id, list(history.events))
        runs.append(run)
        ids.extend(run.children)
    return runs


# ---------------------------------------------------------------------------- the checks
@dataclass
class OrderFacts:
    """Everything the checks need to know about one order, read at one quiet moment."""

    order_id: str
    view: dict[str, Any]
    store_status: str | None
    search_status: str | None
    store_events: list[tuple[int, str]]
    runs: list[WorkflowRun]


def _status_events(events: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted((seq, kind) for seq, kind in events if kind.startswith("status_"))


def _merge_sources(found: dict[str, str]) -> str:
    """'event log and view events: X' when both sources say the same, else each one."""
    by_detail: dict[str, list[str]] = {}
    for source, detail in found.items():
        by_detail.setdefault(detail, []).append(source)
    return "; ".join(f"{' and '.join(sources)}: {d}" for d, sources in by_detail.items())


def check_terminal_kept(facts: OrderFacts) -> list[Violation]:
    found: dict[str, str] = {}
    view_events = [(e["seq"], e["type"]) for e in facts.view.get("events", [])]
    for source, events in (("event log", facts.store_events), ("view events", view_events)):
        statuses = _status_events(events)
        for i, (seq, kind) in enumerate(statuses):
            if kind in ("status_cancelled", "status_completed") and i + 1 < len(statuses):
                after = [k for _, k in statuses[i + 1 :]]
                shown = ", ".join(after[:6]) + (f", ... ({len(after)} in all)" if after[6:] else "")
                found[source] = f"{kind} (seq {seq}) followed by {shown}"
                break
    if not found:
        return []
    return [
        Violation(
            "terminal-status-left",
            f"order {facts.order_id}",
            _merge_sources(found),
            (facts.order_id,),
        )
    ]


def check_no_stage_after_cancel(facts: OrderFacts) -> list[Violation]:
    """Once a cancel of every line is under way (and nothing ever shipped), the order goes
    to CANCELLED and nowhere else: no stage runs on (validation, routing, approval,
    response, fulfilment)."""
    view = facts.view
    lines = view.get("lines", [])
    if not lines or any(ln["shipped_quantity"] for ln in lines):
        return []
    every = {ln["line_id"] for ln in lines}
    events = sorted(view.get("events", []), key=lambda e: e["seq"])
    for event in events:
        if event["type"] != "cancel_requested":
            continue
        named = event["detail"].split(":")[0].removeprefix("lines ").split(", ")
        if set(named) != every:
            continue
        after = [
            f"{e['type']} (seq {e['seq']})"
            for e in events
            if e["seq"] > event["seq"]
            and e["type"].startswith("status_")
            and e["type"] != "status_cancelled"
        ]
        if after:
            return [
                Violation(
                    "stage-ran-after-cancel",
                    f"order {facts.order_id}",
                    f"cancel of every line requested at seq {event['seq']}, then "
                    + ", ".join(after[:6]),
                    (facts.order_id,),
                )
            ]
        return []
    return []


def check_status_agreement(facts: OrderFacts) -> list[Violation]:
    seen = {
        "order view": facts.view.get("status"),
        "orders table": facts.store_status,
        "OmsOrderStatus": facts.search_status,
    }
    if len(set(seen.values())) > 1:
        return [
            Violation(
                "status-disagreement",
                f"order {facts.order_id}",
                ", ".join(f"{k} {v}" for k, v in seen.items()),
                (facts.order_id,),
            )
        ]
    return []


def check_status_matches_lines(facts: OrderFacts) -> list[Violation]:
    """A settled order's status follows from its lines: every unit cancelled is CANCELLED,
    every unit delivered or cancelled (some delivered) is DELIVERED or COMPLETED; and an
    order workflow that has closed left a terminal status behind."""
    out = []
    oid = facts.order_id
    status = facts.view.get("status")
    lines = facts.view.get("lines", [])
    if lines and all(ln["cancelled_quantity"] >= ln["quantity"] for ln in lines):
        if status != "CANCELLED":
            out.append(
                Violation(
                    "cancelled-order-not-cancelled",
                    f"order {oid}",
                    f"every unit of every line is cancelled, yet the order is {status}",
                    (oid,),
                )
            )
    elif lines and all(
        ln["delivered_quantity"] + ln["cancelled_quantity"] >= ln["quantity"] for ln in lines
    ):
        if status not in ("DELIVERED", "PARTIALLY_RETURNED", "RETURNED", "COMPLETED"):
            out.append(
                Violation(
                    "delivered-order-not-delivered",
                    f"order {oid}",
                    f"every unit is delivered or cancelled, yet the order is {status}",
                    (oid,),
                )
            )
    order_run = facts.runs[0] if facts.runs else None
    if order_run is not None and order_run.closed == "COMPLETED" and status not in TERMINAL:
        out.append(
            Violation(
                "closed-without-terminal-status",
                f"order {oid}",
                f"the order workflow has completed, its status stays {status}",
                (oid,),
            )
        )
    return out


def check_cancels_applied(facts: OrderFacts, accepted: dict[str, str]) -> list[Violation]:
    """A cancel the API answered with 200 took every unit of its lines that had not
    shipped: afterwards each such line is shipped + cancelled = ordered."""
    out = []
    for line in facts.view.get("lines", []):
        lid = line["line_id"]
        if lid not in accepted:
            continue
        done = line["shipped_quantity"] + line["cancelled_quantity"]
        if done != line["quantity"]:
            out.append(
                Violation(
                    "accepted-cancel-not-applied",
                    f"order {facts.order_id} line {lid}",
                    f"{accepted[lid]} answered 200, yet the line has shipped "
                    f"{line['shipped_quantity']} + cancelled {line['cancelled_quantity']} of "
                    f"{line['quantity']} (line {line['status']}, order "
                    f"{facts.view.get('status')})",
                    (facts.order_id,),
                )
            )
    return out


def check_workflows(facts: OrderFacts) -> list[Violation]:
    return [
        Violation("workflow-failed", f"workflow {run.workflow_id}", failure, (facts.order_id,))
        for run in facts.runs
        for failure in run.failures
    ]


@dataclass
class StoreFacts:
    """The store's rows for the test's SKUs and orders."""

    inventory: dict[tuple[str, str], tuple[int, int]]  # (loc, sku) -> (on_hand, reserved)
    reservations: list[Reservation]
    shipments: list[tuple[Shipment, str]]  # with the line's sku
    releases: list[OrderRelease]
    returns: list[Return]
    adjustments: Counter[tuple[str, str]]  # the test's applied deltas per (loc, sku)
    lines: list[OrderLine]


async def read_store(
    store: Store, skus: Sequence[str], order_ids: Sequence[str], adjustment_prefix: str
) -> StoreFacts:
    async with store.db.sessions() as session:
        inventory = {
            (r.location_id, r.sku): (r.on_hand, r.reserved)
            for r in (
                await session.execute(select(Inventory).where(Inventory.sku.in_(skus)))
            ).scalars()
        }
        reservations = list(
            (await session.execute(select(Reservation).where(Reservation.sku.in_(skus)))).scalars()
        )
        shipments = [
            (ship, sku)
            for ship, sku in (
                await session.execute(
                    select(Shipment, OrderLine.sku)
                    .join(
                        OrderLine,
                        (OrderLine.order_id == Shipment.order_id)
                        & (OrderLine.line_id == Shipment.line_id),
                    )
                    .where(OrderLine.sku.in_(skus))
                )
            ).all()
        ]
        releases = list(
            (
                await session.execute(
                    select(OrderRelease).where(OrderRelease.order_id.in_(order_ids))
                )
            ).scalars()
        )
        returns = list(
            (await session.execute(select(Return).where(Return.order_id.in_(order_ids)))).scalars()
        )
        lines = list(
            (
                await session.execute(select(OrderLine).where(OrderLine.order_id.in_(order_ids)))
            ).scalars()
        )
        adjustments: Counter[tuple[str, str]] = Counter()
        # the test's own deltas, and units of these orders' returns put back into stock
        restocked = [
            f"{r.return_id}:{line['line_id']}:restock" for r in returns for line in r.lines
        ]
        for adj in (
            await session.execute(
                select(InventoryAdjustment).where(
                    or_(
                        InventoryAdjustment.adjustment_id.startswith(adjustment_prefix),
                        InventoryAdjustment.adjustment_id.in_(restocked),
                    )
                )
            )
        ).scalars():
            adjustments[(adj.location_id, adj.sku)] += adj.delta
    return StoreFacts(inventory, reservations, shipments, releases, returns, adjustments, lines)


async def read_events(store: Store, order_id: str) -> list[tuple[int, str]]:
    async with store.db.sessions() as session:
        rows = await session.execute(
            select(OrderEvent.seq, OrderEvent.type).where(OrderEvent.order_id == order_id)
        )
        return [(seq, kind) for seq, kind in rows.all()]


def _picked_recorded(ship: Shipment) -> bool:
    """Did the location's pick report reach the store for this shipment line? (A pick of
    0 leaves it BACKORDERED; a cancel after a pick of more than 0 leaves it CANCELLED.)"""
    return ship.status in ("PICKED", "SHIPPED", "DELIVERED", "BACKORDERED") or (
        ship.status == "CANCELLED" and ship.picked_quantity > 0
    )


def check_stock(
    facts: StoreFacts, initial: dict[tuple[str, str], int], skus: Sequence[str]
) -> list[Violation]:
    """Per SKU and location: put in = on hand + shipped out + written off at pick;
    reserved = live reservations; 0 <= reserved <= on hand."""
    out = []
    consumed: Counter[tuple[str, str]] = Counter()
    live: Counter[tuple[str, str]] = Counter()
    live_orders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in facts.reservations:
        key = (r.location_id, r.sku)
        if r.status == "CONSUMED":
            consumed[key] += r.quantity
        elif r.status in LIVE_RESERVATION:
            live[key] += r.quantity
            live_orders[key].add(r.order_id)
    written_off: Counter[tuple[str, str]] = Counter()
    touching: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ship, sku in facts.shipments:
        if ship.shipment_key.endswith("-H"):
            continue  # a pickup store's hand-over of a transfer: the warehouse's stock moved
        key = (ship.location_id, sku)
        touching[key].add(ship.order_id)
        if _picked_recorded(ship):
            written_off[key] += ship.released_quantity - ship.picked_quantity
    for r in facts.reservations:
        touching[(r.location_id, r.sku)].add(r.order_id)
    keys = sorted(set(facts.inventory) | set(initial) | set(facts.adjustments) | set(consumed))
    for key in keys:
        loc, sku = key
        if sku not in skus:
            continue
        on_hand, reserved = facts.inventory.get(key, (0, 0))
        put_in = initial.get(key, 0) + facts.adjustments.get(key, 0)
        orders = tuple(sorted(touching[key]))
        accounted = on_hand + consumed[key] + written_off[key]
        if accounted != put_in:
            out.append(
                Violation(
                    "stock-not-conserved",
                    f"sku {sku} at {loc}",
                    f"put in {put_in} (initial {initial.get(key, 0)} + adjustments "
                    f"{facts.adjustments.get(key, 0)}) != on_hand {on_hand} + shipped out "
                    f"{consumed[key]} + written off at pick {written_off[key]} = {accounted}",
                    orders,
                )
            )
        if reserved != live[key]:
            out.append(
                Violation(
                    "reserved-mismatch",
                    f"sku {sku} at {loc}",
                    f"inventory.reserved {reserved} != ACTIVE+PICKED reservations {live[key]} "
                    f"(orders {sorted(live_orders[key])})",
                    orders,
                )
            )
        if not 0 <= reserved <= on_hand:
            out.append(
                Violation(
                    "reserved-out-of-bounds",
                    f"sku {sku} at {loc}",
                    f"reserved {reserved}, on_hand {on_hand}",
                    orders,
                )
            )
    return out


def check_releases(facts: StoreFacts) -> list[Violation]:
    out = []
    current: Counter[tuple[str, str]] = Counter()
    for rel in facts.releases:
        if rel.status_quantity == 1:
            current[(rel.order_id, rel.line_id)] += 1
    for (order_id, line_id), n in sorted(current.items()):
        if n > 1:
            keys = sorted(
                r.release_key
                for r in facts.releases
                if (r.order_id, r.line_id) == (order_id, line_id) and r.status_quantity == 1
            )
            out.append(
                Violation(
                    "several-current-releases",
                    f"order {order_id} line {line_id}",
                    f"{n} order_releases rows with status_quantity 1: {keys}",
                    (order_id,),
                )
            )
    for ship, _ in facts.shipments:
        shipped = ("SHIPPED", "DELIVERED", "RETURNED_TO_SENDER", "READY_FOR_PICKUP")
        if ship.status not in shipped and ship.quantity:
            out.append(
                Violation(
                    "unshipped-shipment-quantity",
                    f"order {ship.order_id} shipment {ship.shipment_key} line {ship.line_id}",
                    f"status {ship.status} with quantity {ship.quantity}",
                    (ship.order_id,),
                )
            )
    return out


def check_projection(facts: OrderFacts, store: StoreFacts) -> list[Violation]:
    """Once settled, the store's rows say what the order view says: line statuses,
    releases (one current per line) and shipments (status and shipped quantity)."""
    out = []
    oid = facts.order_id
    view = facts.view
    table_lines = {r.line_id: r.status for r in store.lines if r.order_id == oid}
    view_lines = {ln["line_id"]: ln["status"] for ln in view.get("lines", [])}
    if table_lines != view_lines:
        out.append(
            Violation(
                "line-status-disagreement",
                f"order {oid}",
                f"order view {view_lines}, order_lines table {table_lines}",
                (oid,),
            )
        )
    view_current = Counter(r["line_id"] for r in view.get("releases", []) if r["status_quantity"])
    for line_id, n in sorted(view_current.items()):
        if n > 1:
            out.append(
                Violation(
                    "several-current-releases",
                    f"order {oid} line {line_id}",
                    f"the order view lists {n} releases with status_quantity 1",
                    (oid,),
                )
            )
    table_releases = {
        (r.release_key, r.line_id): (r.status, r.status_quantity)
        for r in store.releases
        if r.order_id == oid
    }
    view_releases = {
        (r["release_key"], r["line_id"]): (r["status"], r["status_quantity"])
        for r in view.get("releases", [])
    }
    if table_releases != view_releases:
        diff = sorted(
            (k, view_releases.get(k), table_releases.get(k))
            for k in set(table_releases) | set(view_releases)
            if view_releases.get(k) != table_releases.get(k)
        )
        out.append(
            Violation(
                "release-disagreement",
                f"order {oid}",
                f"(release, line): (view, order_releases table) differ: {diff}",
                (oid,),
            )
        )
    table_ships = {
        (ship.shipment_key, ship.line_id): (ship.status, ship.quantity)
        for ship, _ in store.shipments
        if ship.order_id == oid
    }
    view_ships = {
        (s["shipment_key"], s["line_id"]): (s["status"], s["quantity"])
        for s in view.get("shipments", [])
    }
    if table_ships != view_ships:
        diff = sorted(
            (k, view_ships.get(k), table_ships.get(k))
            for k in set(table_ships) | set(view_ships)
            if view_ships.get(k) != table_ships.get(k)
        )
        out.append(
            Violation(
                "shipment-disagreement",
                f"order {oid}",
                f"(shipment, line): (view, shipments table) differ: {diff}",
                (oid,),
            )
        )
    return out


def check_lines(facts: OrderFacts, store: StoreFacts) -> list[Violation]:
    """Returns never exceed ordered units; CANCEL returns add up to the cancelled units;
    each unit is either open, reserved, shipped or cancelled, never two of them."""
    out = []
    oid = facts.order_id
    view = facts.view
    status = view.get("status")
    # (type, line) -> units; an EXPIRED return brought nothing back, a RECEIVED one what
    # its parcel held (units asked back but not in it may be returned again)
    view_returns: Counter[tuple[str, str]] = Counter()
    for ret in view.get("returns", []):
        if ret["status"] == "EXPIRED":
            continue
        came = ret["lines"]
        if ret["type"] != "CANCEL" and ret["status"] == "RECEIVED":
            came = ret.get("received", [])
        for line in came:
            view_returns[(ret["type"], line["line_id"])] += line["quantity"]
    store_returns: Counter[tuple[str, str]] = Counter()
    for row in store.returns:
        if row.order_id == oid and row.status != "EXPIRED":
            came = row.lines
            if row.type != "CANCEL" and row.status == "RECEIVED":
                came = row.received or []
            for line in came:
                store_returns[(row.type, line["line_id"])] += line["quantity"]
    reservations = [r for r in store.reservations if r.order_id == oid]
    for line in view.get("lines", []):
        lid = line["line_id"]
        ordered = line["quantity"]
        cancelled = line["cancelled_quantity"]
        subject = f"order {oid} line {lid}"
        exceeded: dict[str, str] = {}
        mismatched: dict[str, str] = {}
        for source, returns in (("view", view_returns), ("returns table", store_returns)):
            total = sum(q for (_, l_id), q in returns.items() if l_id == lid)
            if total > ordered:
                exceeded[source] = f"{total} units returned of {ordered} ordered"
            if returns[("CANCEL", lid)] != cancelled:
                mismatched[source] = (
                    f"CANCEL returns add up to {returns[('CANCEL', lid)]} units, "
                    f"the line's cancelled_quantity is {cancelled}"
                )
        if exceeded:
            out.append(
                Violation("returns-exceed-ordered", subject, _merge_sources(exceeded), (oid,))
            )
        # a customer's returns: what came back is counted once, and never more than came
        received = sum(
            r["quantity"]
            for ret in view.get("returns", [])
            if ret["type"] == "RETURN" and ret["status"] == "RECEIVED"
            for r in ret.get("received", [])
            if r["line_id"] == lid
        )
        asked = view_returns[("RETURN", lid)]
        returned = line.get("returned_quantity", 0)
        if returned != received or asked > line["delivered_quantity"]:
            out.append(
                Violation(
                    "returns-mismatch",
                    subject,
                    f"returned_quantity {returned}, received in RETURN returns {received}, "
                    f"asked back (not expired) {asked} of {line['delivered_quantity']} "
                    "delivered",
                    (oid,),
                )
            )
        if mismatched:
            out.append(
                Violation("cancel-returns-mismatch", subject, _merge_sources(mismatched), (oid,))
            )
        mine = [r for r in reservations if r.line_id == lid]
        held = sum(r.quantity for r in mine if r.status in LIVE_RESERVATION)
        shipped = sum(r.quantity for r in mine if r.status == "CONSUMED")
        if shipped != line["shipped_quantity"]:
            out.append(
                Violation(
                    "shipped-mismatch",
                    subject,
                    f"CONSUMED reservations {shipped}, order view shipped_quantity "
                    f"{line['shipped_quantity']}",
                    (oid,),
                )
            )
        if held + shipped + cancelled > ordered:
            out.append(
                Violation(
                    "line-overcommitted",
                    subject,
                    f"reserved {held} + shipped {shipped} + cancelled {cancelled} > ordered "
                    f"{ordered} (reservations {_rows(mine)})",
                    (oid,),
                )
            )
        elif status in ENDED and shipped + cancelled != ordered:
            out.append(
                Violation(
                    "line-units-lost",
                    subject,
                    f"order {status}: shipped {shipped} + cancelled {cancelled} != ordered "
                    f"{ordered} (line status {line['status']})",
                    (oid,),
                )
            )
    if status in CLOSED_FOR_STOCK:
        held_rows = [r for r in reservations if r.status in LIVE_RESERVATION]
        for name, rows in (
            ("stock-held-by-closed-order", [r for r in held_rows if r.quantity]),
            # a pick of 0 leaves its reservation PICKED with 0 units: nothing is held, but
            # the reservation never closes
            ("empty-reservation-left-open", [r for r in held_rows if not r.quantity]),
        ):
            if rows:
                out.append(
                    Violation(
                        name,
                        f"order {oid}",
                        f"status {status} but reservations {_rows(rows)}",
                        (oid,),
                    )
                )
    return out


def _rows(reservations: Iterable[Reservation]) -> list[tuple[str, str, int]]:
    return [(r.reservation_id, r.status, r.quantity) for r in reservations]


def check_no_live_reservations(
    store: StoreFacts, statuses: dict[str, str | None]
) -> list[Violation]:
    """After every order was driven to an end, no reservation of the test's SKUs holds
    stock any more."""
    return [
        Violation(
            "reservation-left" if r.quantity else "empty-reservation-left-open",
            f"sku {r.sku} at {r.location_id}",
            f"after driving every order to an end, reservation {r.reservation_id} is "
            f"{r.status} ({r.quantity} units; order {statuses.get(r.order_id, 'unknown')})",
            (r.order_id,),
        )
        for r in store.reservations
        if r.status in LIVE_RESERVATION
    ]


async def order_facts(
    client: Client,
    store: Store,
    order_id: str,
    workflow_id: str,
    view: dict[str, Any],
    release_ids: Iterable[str] = (),
) -> OrderFacts:
    row = await store.orders.get(order_id)
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
        search_status = described.typed_search_attributes.get(search.ORDER_STATUS)
    except RPCError as err:
        search_status = f"(describe failed: {err.message})"
    return OrderFacts(
        order_id=order_id,
        view=view,
        store_status=row.status if row else None,
        search_status=search_status,
        store_events=await read_events(store, order_id),
        runs=await workflow_runs(client, workflow_id, release_ids),
    )
