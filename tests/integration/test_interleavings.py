"""Random interleavings of order messages against the real stack, then the order
invariants of DESIGN.md section 3 (issue 7).

A seeded generator plays web shops, approvers, locations, operations and the admin
against the API over HTTP (real worker, real Temporal dev server, SQLite and PostgreSQL):
it creates orders on channels with approvals, tolerances and auto-cancel, holds some
(payment amount != total), leaves some without stock, and then fires bursts of messages at
once (asyncio.gather): cancels, partial cancels, approvals and declines, full, short and
zero picks, ships, deliveries, resumes, manual assignments and stock arrivals, often two
of them against the same order (two cancels, cancel + pick, cancel + approval, pick +
cancel + ship). Any 4xx is fine (the message was not allowed at that moment); a 5xx, a
transport error or a request running past its timeout is a failure.

Then the orders settle (each workflow and release idle, only waiting for the outside
world or a long timer), the invariants are checked, every remaining order is driven to an
end (cancel what can be cancelled, ship and deliver the rest), and they are checked
again, now also: no reservation is left for the test's SKUs.

The environment chooses the run: OMS_CHAOS_SEED (default 7001), OMS_CHAOS_STEPS
(bursts, default 80), OMS_CHAOS_ORDERS (default 12), OMS_CHAOS_REQUEST_TIMEOUT (seconds per
request, default 30), OMS_CHAOS_SETTLE_SECONDS (default 45), OMS_CHAOS_DRIVE_SECONDS
(default 90), OMS_CHAOS_PARALLEL (bursts in flight at once, default 3), OMS_CHAOS_VERBOSE=1
(print every order's operation log). The seed and a summary are
printed; on failure the message names each broken invariant with its order or SKU, and
shows the operation log of every order involved. Timing makes runs of one seed differ in
detail; the seed fixes the generator's choices. `make chaos` runs several seeds, longer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError

from oms.ids import order_key
from tests.integration.conftest import BERLIN, Stack, unique_sku
from tests.integration.invariants import (
    ENDED,
    OrderFacts,
    Violation,
    check_cancels_applied,
    check_lines,
    check_no_live_reservations,
    check_no_stage_after_cancel,
    check_projection,
    check_releases,
    check_status_agreement,
    check_status_matches_lines,
    check_stock,
    check_terminal_kept,
    check_workflows,
    order_facts,
    read_store,
    workflow_runs,
)
from workflows.fulfillment import fulfillment_workflow_id
from workflows.model import FulfillmentProgress
from workflows.order import order_workflow_id

SEED = int(os.environ.get("OMS_CHAOS_SEED", "7001"))
STEPS = int(os.environ.get("OMS_CHAOS_STEPS", "80"))
ORDERS = int(os.environ.get("OMS_CHAOS_ORDERS", "12"))
REQUEST_TIMEOUT = float(os.environ.get("OMS_CHAOS_REQUEST_TIMEOUT", "30"))
SETTLE_SECONDS = float(os.environ.get("OMS_CHAOS_SETTLE_SECONDS", "45"))
VERBOSE = os.environ.get("OMS_CHAOS_VERBOSE") == "1"  # print every order's log
DRIVE_SECONDS = float(os.environ.get("OMS_CHAOS_DRIVE_SECONDS", "90"))
# bursts in flight at once during the random phase
PARALLEL = int(os.environ.get("OMS_CHAOS_PARALLEL", "3"))
POLL = 0.3  # seconds between polls of a condition (never a wait tuned to pass)

LOCATIONS = ("WH-BERLIN", "WH-MUNICH", "ST-HAMBURG", "WH-LONDON")
# click and collect orders are handed over here (transferred from a warehouse when short)
PICKUP_STORE = "ST-HAMBURG"
EARLY = ("CREATED", "VALIDATING", "VALIDATED", "ROUTING")
ROUTING_WAITS = ("ON_HOLD", "NOT_ANNOUNCED", "CHECK_ANNOUNCED")
PRICES = ("5.00", "12.50", "19.99")

pytestmark = pytest.mark.timeout(
    int(os.environ.get("OMS_CHAOS_TIMEOUT", str(max(600, STEPS * 6 + ORDERS * 10))))
)

Factory = Callable[[], Coroutine[Any, Any, None]]
STEP: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="setup")


@dataclass
class OrderInfo:
    order_id: str
    channel: str
    shop_key: str
    body: dict[str, Any]
    held: bool  # created with a payment amount that does not match the total

    @property
    def line_ids(self) -> list[str]:
        return [line["line_id"] for line in self.body["lines"]]

    @property
    def pickup(self) -> bool:
        return bool(self.body["delivery"].get("type") == "pickup")

    def transfer(self, view: dict[str, Any], shipment_key: str) -> bool:
        """The shipment is a transfer to the pickup store (its work order's kind)."""
        work_order = f"{self.order_id}-WO{shipment_key[len(self.order_id) + 2 :]}"
        return any(
            w["work_order_id"] == work_order and w.get("kind") == "TRANSFER"
            for w in view.get("work_orders", [])
        )

    def sku(self, line_id: str) -> str:
        return str(next(ln["sku"] for ln in self.body["lines"] if ln["line_id"] == line_id))

    def quantity(self, line_id: str) -> int:
        return int(next(ln["quantity"] for ln in self.body["lines"] if ln["line_id"] == line_id))


def _brief(payload: Any) -> str:
    if payload is None:
        return ""
    text = json.dumps(payload, separators=(",", ":"), default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def _answer(status: int, body: Any) -> str:
    if isinstance(body, dict):
        if "error" in body and isinstance(body["error"], dict):
            return str(body["error"].get("code"))
        if "status" in body:
            return str(body["status"])
    return ""


class Chaos:
    """One run of the generator against one stack."""

    def __init__(self, stack: Stack, seed: int, steps: int, orders: int) -> None:
        self.stack = stack
        self.seed = seed
        self.steps = steps
        self.max_orders = orders
        self.rng = random.Random(seed)
        token = uuid.uuid4().hex[:6]
        # order ids unique per run: both backends share one Temporal server
        self.prefix = f"CX{token}{stack.backend[0].upper()}"
        self.adjustment_prefix = f"chaos-{token}-{stack.backend}-"
        self.tracking = 0
        self.adjustments = 0
        self.skus: list[str] = []
        self.stocked: list[str] = []  # SKUs with stock somewhere
        self.initial: dict[tuple[str, str], int] = {}
        self.channels: dict[str, str] = {}  # role -> channel id
        self.approvers: list[str] = []
        self.orders: dict[str, OrderInfo] = {}
        self.last_status: dict[str, str] = {}
        self.logs: dict[str, list[str]] = defaultdict(list)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.violations: list[tuple[str, Violation]] = []
        self.phase = "setup"
        self.after_random = ""
        # order -> line -> the first cancel of it that the API accepted (answered 200)
        self.accepted_cancels: dict[str, dict[str, str]] = defaultdict(dict)
        self.started = asyncio.get_running_loop().time()

    # ------------------------------------------------------------------ plumbing
    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.started

    def violate(self, violation: Violation) -> None:
        self.violations.append((self.phase, violation))

    def log(self, order_id: str | None, text: str) -> None:
        entry = f"{self.now():7.2f}s {STEP.get()} {text}"
        self.logs[order_id or "-"].append(entry)

    async def request(
        self,
        kind: str,
        order_id: str | None,
        method: str,
        path: str,
        *,
        key: str,
        payload: Any = None,
    ) -> tuple[int, Any]:
        """One HTTP call with a timeout; logs it, counts it, flags 5xx and hangs."""
        try:
            status, body = await asyncio.wait_for(
                self.stack.call(method, path, key=key, json=payload), REQUEST_TIMEOUT
            )
            label = str(status)
        except TimeoutError:
            status, body, label = 0, None, "timeout"
        except Exception as err:  # a transport error is a failure like a 5xx
            status, body, label = -1, None, f"error {type(err).__name__}: {err}"
        answer = _answer(status, body)
        # answers by code and, for commands, the order or shipment status or error code
        counted = label if status > 0 else label.split(":")[0]
        self.counts[(kind, f"{counted} {answer}".strip() if kind != "read" else counted)] += 1
        if kind != "read":
            shown = "" if kind == "create" else _brief(payload)  # the order is logged apart
            self.log(
                order_id,
                f"{kind} {method} {path} {shown} as {key} -> {label} {answer}".rstrip(),
            )
        if status >= 500 or status <= 0:
            what = "request-timeout" if status == 0 else "http-5xx"
            if status == 0:
                detail = f"no answer in {REQUEST_TIMEOUT:g}s"
            else:
                detail = f"answered {label}: {_brief(body)}"
            self.violate(
                Violation(
                    what,
                    f"{method} {path}" + (f" (order {order_id})" if order_id else ""),
                    f"{kind} as {key}: {detail}",
                    (order_id,) if order_id else (),
                )
            )
            if kind == "read":
                self.log(order_id, f"read {path} -> {label} {answer}")
        return status, body

    async def read(self, order_id: str) -> dict[str, Any] | None:
        status, body = await self.request(
            "read", order_id, "GET", f"/v1/orders/{order_id}", key="ops"
        )
        if status != 200 or not isinstance(body, dict):
            return None
        if self.last_status.get(order_id) != body["status"]:
            self.last_status[order_id] = body["status"]
            self.log(order_id, f"seen {body['status']}")
        return body

    # ------------------------------------------------------------------ set-up
    async def setup(self) -> None:
        stack = self.stack
        self.skus = [unique_sku() for _ in range(3)]
        self.stocked = self.skus[:2]  # the third SKU has no stock anywhere at first
        for sku in self.skus:
            for loc in LOCATIONS:
                self.initial[(loc, sku)] = (
                    self.rng.choice((0, 0, 1, 2, 3, 4)) if (sku in self.stocked) else 0
                )
        await stack.set_stock([(loc, sku, qty) for (loc, sku), qty in self.initial.items()])
        token = uuid.uuid4().hex[:6]
        self.approvers = [f"chaos-{token}-{name}" for name in ("ann", "ben", "cid")]
        for name in self.approvers:
            await stack.add_key(name, "approver")
        quick = {"backorder_retry_seconds": 1, "backorder_max_attempts": 2}
        ann, ben, cid = self.approvers
        configs: dict[str, dict[str, Any]] = {
            # the return window closes at once: delivered orders go on to COMPLETED
            "std": {**quick, "return_window_days": 0},
            "splitq": {**quick, "split_policy": "split_quantities"},
            "appr": {
                **quick,
                "approval_reasons": [
                    {"reason": "credit", "rank": 1, "approvers": [ann]},
                    {"reason": "margin", "rank": 1, "approvers": [ben, ann]},
                    {
                        "reason": "board",
                        "rank": 2,
                        "approvers": [cid],
                        "reroute_after_approval": True,
                    },
                ],
            },
            # approvals that time out: escalation, then a decline by timeout
            "apprt": {
                **quick,
                "approval_reasons": [
                    {
                        "reason": "quick",
                        "rank": 1,
                        "approvers": [ben],
                        "timeout_seconds": 2,
                        "timeout_action": "escalate",
                        "escalate_to": [cid],
                    },
                    {
                        "reason": "late",
                        "rank": 2,
                        "approvers": [ann],
                        "timeout_seconds": 3,
                        "timeout_action": "decline",
                    },
                ],
            },
            # only Berlin lies within 50 km of the ship-to: CHECK_ANNOUNCED when it has none
            "near": {**quick, "max_distance_km": 50},
            "auto": {**quick, "auto_cancel_not_announced": True, "split_policy": "ship_complete"},
        }
        for role, config in configs.items():
            channel = await stack.make_channel(f"cx{role}", **config)
            self.channels[role] = channel
            await stack.add_key(f"shop-{channel}", "webshop", channel)

    # ------------------------------------------------------------------ operations
    def new_order(self) -> OrderInfo:
        rng = self.rng
        role = rng.choices(("std", "splitq", "appr", "apprt", "near", "auto"), (3, 2, 2, 1, 1, 1))[
            0
        ]
        channel = self.channels[role]
        lines: list[dict[str, Any]] = []
        for i in range(rng.choice((1, 1, 2, 2, 3))):
            sku = rng.choices(self.skus, (45, 40, 15))[0]
            lines.append(
                {
                    "line_id": str(i + 1),
                    "sku": sku,
                    "quantity": rng.randint(1, 3),
                    "unit_price": rng.choice(PRICES),
                }
            )
        total = sum(Decimal(ln["unit_price"]) * ln["quantity"] for ln in lines)
        held = rng.random() < 0.15
        amount = total + Decimal("1.00") if held else total
        shop_id = f"{self.prefix}-{len(self.orders) + 1}"
        order_id = order_key(shop_id, channel)  # the OMS's id (oms/ids.py)
        body = {
            "order_id": shop_id,
            "sales_channel": channel,
            "customer": {"id": "C-CHAOS", "email": "c@example.com", "name": "Chaos"},
            "ship_to": BERLIN,
            "lines": lines,
            "payment": {
                "method": "card",
                "amount": str(amount),
                "currency": "EUR",
                "authorized": True,
            },
            "delivery": {"type": "ship", "ship_complete": False},
        }
        if rng.random() < 0.2:
            body["delivery"] = {"type": "pickup", "pickup_location_id": PICKUP_STORE}
        info = OrderInfo(order_id, channel, f"shop-{channel}", body, held)
        return info

    async def create(self, info: OrderInfo) -> bool:
        self.orders[info.order_id] = info
        lines = ", ".join(
            f"{ln['line_id']}: {ln['quantity']} x {ln['sku']}" for ln in info.body["lines"]
        )
        self.log(
            info.order_id,
            f"order on {info.channel} ({lines}; payment {info.body['payment']['amount']}"
            + (", does not match the total" if info.held else "")
            + ")",
        )
        status, _ = await self.request(
            "create",
            info.order_id,
            "POST",
            "/v1/orders",
            key=info.shop_key,
            payload=info.body,
        )
        if status != 201:
            del self.orders[info.order_id]
            return False
        return True

    async def cancel(self, order_id: str, line_ids: list[str] | None, key: str) -> None:
        payload: dict[str, Any] = {"reason": "chaos"}
        if line_ids is not None:
            payload["line_ids"] = line_ids
        at = f"{STEP.get()} {self.now():.2f}s"
        status, _ = await self.request(
            "cancel_lines" if line_ids else "cancel",
            order_id,
            "POST",
            f"/v1/orders/{order_id}/cancel",
            key=key,
            payload=payload,
        )
        if status == 200:
            for lid in line_ids or self.orders[order_id].line_ids:
                what = f"cancel of {'lines ' + ','.join(line_ids) if line_ids else 'the order'}"
                self.accepted_cancels[order_id].setdefault(lid, f"{what} at {at}")

    def decide_by_one_of(
        self, order_id: str, reason: str, approvers: list[str], decision: str
    ) -> Coroutine[Any, Any, None]:
        return self.decide(order_id, reason, self.rng.choice(approvers), decision)

    async def decide(self, order_id: str, reason: str, approver: str, decision: str) -> None:
        await self.request(
            decision,
            order_id,
            "POST",
            f"/v1/orders/{order_id}/approvals",
            key=approver,
            payload={"reason": reason, "decision": decision, "comment": "chaos"},
        )

    async def store_report(
        self, kind: str, order_id: str, shipment_key: str, location_id: str, payload: Any
    ) -> None:
        action = "receive" if kind == "receive_transfer" else kind.split("_")[0]
        await self.request(
            kind,
            order_id,
            "POST",
            f"/v1/shipments/{shipment_key}/{action}",
            key=location_id,
            payload=payload,
        )

    async def replay_report(self, order_id: str, seq: int, pick: int) -> None:
        """An engineer sends a release's progress report to the order once more (with the
        CLI, as DESIGN section 4 allows): a repeated message must change nothing."""
        client = self.stack.client
        workflow_id = order_workflow_id(order_id)
        order = client.get_workflow_handle(workflow_id)
        try:
            # the reports the order's histories hold from that release (every run: one
            # from before a continue-as-new sent again to the newest run)
            runs = [w.run_id async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
            events = []
            for run_id in runs or [None]:
                history = await client.get_workflow_handle(
                    workflow_id, run_id=run_id
                ).fetch_history()
                events += history.events
            sent: list[FulfillmentProgress] = []
            for e in events:
                attributes = e.workflow_execution_signaled_event_attributes
                if (
                    e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                    or attributes.signal_name != "fulfillment_progress"
                ):
                    continue
                [step] = await client.data_converter.decode(
                    list(attributes.input.payloads), [FulfillmentProgress]
                )
                if step.release_key.endswith(f"-R{seq}"):
                    sent.append(step)
            if not sent:
                answer, what = "nothing-sent-yet", f"release {seq}"
            else:
                progress = sent[pick % len(sent)]
                what = f"{progress.kind} of {progress.shipment_key} {progress.quantities}" + (
                    f" backordered {progress.backordered}" if progress.backordered else ""
                )
                await order.signal("fulfillment_progress", progress)
                answer = "signalled"
        except RPCError as err:
            answer, what = f"rpc-{err.status.name if err.status else 'error'}", f"release {seq}"
        self.counts[("replay_report", answer)] += 1
        self.log(order_id, f"replay_report {what} -> {answer}")

    async def work_orders(self, order_id: str, location_id: str) -> None:
        await self.request(
            "read", order_id, "GET", f"/v1/locations/{location_id}/work-orders", key=location_id
        )

    async def resume(self, order_id: str, fixed: bool) -> None:
        payload: dict[str, Any] = {"comment": "chaos"}
        if fixed:
            info = self.orders[order_id]
            total = sum(Decimal(ln["unit_price"]) * ln["quantity"] for ln in info.body["lines"])
            payload["payment"] = {**info.body["payment"], "amount": str(total)}
        await self.request(
            "resume_fixed" if fixed else "resume",
            order_id,
            "POST",
            f"/v1/orders/{order_id}/resume",
            key="ops",
            payload=payload,
        )

    async def add_stock(self, order_id: str | None, location_id: str, sku: str, delta: int) -> None:
        self.adjustments += 1
        await self.request(
            "stock",
            order_id,
            "POST",
            "/v1/inventory/adjustments",
            key="admin",
            payload=[
                {
                    "adjustment_id": f"{self.adjustment_prefix}{self.adjustments}",
                    "location_id": location_id,
                    "sku": sku,
                    "delta": delta,
                    "reason": "chaos: stock arrives",
                }
            ],
        )

    async def stock_then(self, order_id: str, line_id: str, location_id: str, then: str) -> None:
        """Stock arrives for a waiting line, then ops assign it there or resume routing."""
        info = self.orders[order_id]
        await self.add_stock(order_id, location_id, info.sku(line_id), info.quantity(line_id))
        if then == "assign":
            await self.request(
                "assign",
                order_id,
                "POST",
                f"/v1/orders/{order_id}/assignments",
                key="ops",
                payload={
                    "assignments": [{"line_id": line_id, "location_id": location_id}],
                    "comment": "chaos",
                },
            )
        else:
            await self.resume(order_id, fixed=False)

    # ------------------------------------------------------------------ planning
    def canceller(self, order_id: str) -> str:
        return self.rng.choice(("ops", self.orders[order_id].shop_key))

    def some_lines(self, order_id: str) -> list[str]:
        ids = self.orders[order_id].line_ids
        k = self.rng.randint(1, max(1, len(ids) - 1))
        return sorted(self.rng.sample(ids, k))

    def plan(self, order_id: str, view: dict[str, Any] | None) -> list[tuple[float, Factory]]:
        """Weighted operations that make sense (mostly) for the order as last seen."""
        rng = self.rng
        info = self.orders[order_id]
        status = view["status"] if view else "UNKNOWN"
        ops: list[tuple[float, Factory]] = []

        def add(weight: float, factory: Factory) -> None:
            ops.append((weight, factory))

        ended = status in ENDED
        # a location looks at its work orders: changes nothing, lets the order move on
        add(2, lambda: self.work_orders(order_id, rng.choice(LOCATIONS)))
        cancel_weight = 0.1 if ended else 0.25 if status in EARLY + ROUTING_WAITS else 0.15
        add(cancel_weight, lambda: self.cancel(order_id, None, self.canceller(order_id)))
        if not ended:  # two cancels at once
            add(
                cancel_weight / 2,
                lambda: self.together(
                    self.cancel(order_id, None, self.canceller(order_id)),
                    self.cancel(order_id, None, self.canceller(order_id)),
                ),
            )
        if len(info.line_ids) > 1:
            add(
                cancel_weight * 0.7,
                lambda: self.cancel(order_id, self.some_lines(order_id), self.canceller(order_id)),
            )
        if view is None:
            return ops
        for approval in view.get("approvals", []):
            if approval["status"] not in ("pending", "waiting"):
                continue
            reason, approvers = approval["reason"], approval["approvers"]
            pending = approval["status"] == "pending"
            add(
                3 if pending else 0.3,
                partial(self.decide_by_one_of, order_id, reason, approvers, "approve"),
            )
            add(
                0.5 if pending else 0.1,
                partial(self.decide_by_one_of, order_id, reason, approvers, "decline"),
            )
            if pending:  # approval and cancel at once
                add(
                    0.5,
                    lambda r=reason, a=approvers: self.together(  # type: ignore[misc]
                        self.decide_by_one_of(order_id, r, a, "approve"),
                        self.cancel(order_id, None, self.canceller(order_id)),
                    ),
                )
        if info.channel == self.channels["appr"] and status in EARLY:
            add(0.3, lambda: self.decide(order_id, "credit", self.approvers[0], "approve"))
        quantities = {(r["release_key"], r["line_id"]): r["quantity"] for r in view["releases"]}
        shipments: dict[str, tuple[str, str, dict[str, str]]] = {}
        for s in view["shipments"]:
            entry = shipments.setdefault(
                s["shipment_key"], (s["location_id"], s["release_key"], {})
            )
            entry[2][s["line_id"]] = s["status"]
        for key, (loc, release, lines) in sorted(shipments.items()):
            states = set(lines.values())
            full = {lid: quantities.get((release, lid), 1) for lid in sorted(lines)}
            if "OPEN" in states:
                # pick + cancel + ship of the same shipment at once
                add(
                    0.4,
                    lambda k=key, lo=loc, f=full: self.together(  # type: ignore[misc]
                        self.pick(order_id, k, lo, f, "pick_full"),
                        self.cancel(order_id, sorted(f), self.canceller(order_id)),
                        self.ship(order_id, k, lo),
                    ),
                )
                add(3, partial(self.pick, order_id, key, loc, full, "pick_full"))
                add(1, partial(self.pick, order_id, key, loc, full, "pick_short"))
                add(0.6, partial(self.pick, order_id, key, loc, full, "pick_zero"))
            elif rng.random() < 0.1:
                add(0.2, partial(self.pick, order_id, key, loc, full, "pick_full"))
            if "PICKED" in states:
                add(3, partial(self.ship, order_id, key, loc))
            if "READY_FOR_PICKUP" in states:  # the customer collects (a cancel too late)
                add(3, partial(self.deliver, order_id, key, loc))
                add(
                    0.3,
                    lambda k=key, lo=loc: self.together(  # type: ignore[misc]
                        self.deliver(order_id, k, lo),
                        self.cancel(order_id, None, self.canceller(order_id)),
                    ),
                )
            if "SHIPPED" in states and info.transfer(view, key):
                # the pickup store receives the transfer (twice at once: counted once); the
                # warehouse cannot hand it over (409)
                add(3, partial(self.receive_transfer, order_id, key))
                add(
                    0.3,
                    lambda k=key: self.together(  # type: ignore[misc]
                        self.receive_transfer(order_id, k), self.receive_transfer(order_id, k)
                    ),
                )
                add(0.3, partial(self.deliver, order_id, key, loc))
            elif "SHIPPED" in states:
                add(3, partial(self.deliver, order_id, key, loc))
                add(0.6, partial(self.track, order_id, key, loc, "delivered"))
                add(0.4, partial(self.track, order_id, key, loc, "failed"))
                add(
                    0.3,  # the carrier's delivery and the location's at once
                    lambda k=key, lo=loc: self.together(  # type: ignore[misc]
                        self.track(order_id, k, lo, "delivered"), self.deliver(order_id, k, lo)
                    ),
                )
        seqs = sorted({int(r["release_key"].rsplit("-R", 1)[1]) for r in view["releases"]})
        if seqs:
            add(0.4, lambda: self.replay_report(order_id, rng.choice(seqs), rng.randint(0, 5)))
        if status == "ON_HOLD":
            add(3, lambda: self.resume(order_id, fixed=True))
            add(0.4, lambda: self.resume(order_id, fixed=False))
        waiting = [
            ln["line_id"] for ln in view["lines"] if ln["status"] in ("CREATED", "BACKORDERED")
        ]
        if waiting and status in ("NOT_ANNOUNCED", "CHECK_ANNOUNCED"):
            add(
                1.5,
                lambda: self.stock_then(
                    order_id, rng.choice(waiting), rng.choice(LOCATIONS), "assign"
                ),
            )
            add(
                1.5,
                lambda: self.stock_then(
                    order_id, rng.choice(waiting), rng.choice(LOCATIONS), "resume"
                ),
            )
            add(0.3, lambda: self.resume(order_id, fixed=False))
        elif waiting and status not in EARLY + ROUTING_WAITS + ENDED:
            add(
                1,
                lambda: self.stock_then(
                    order_id, rng.choice(waiting), rng.choice(LOCATIONS), "assign"
                ),
            )
            add(
                0.7,
                lambda: self.stock_then(
                    order_id, rng.choice(waiting), rng.choice(LOCATIONS), "resume"
                ),
            )
        if status not in ROUTING_WAITS:
            add(0.1, lambda: self.resume(order_id, fixed=rng.random() < 0.5))
        # after delivery: returns, and their parcels received
        delivered = [ln for ln in view["lines"] if ln.get("delivered_quantity")]
        if delivered and status in ("DELIVERED", "PARTIALLY_RETURNED", "RETURNED"):
            line = rng.choice(delivered)
            add(
                1.5,
                lambda ln=line: self.ask_return(  # type: ignore[misc]
                    order_id, ln["line_id"], rng.randint(1, ln["delivered_quantity"] + 1)
                ),
            )
            add(
                0.3,  # two returns of the same units at once: one of them fits
                lambda ln=line: self.together(  # type: ignore[misc]
                    self.ask_return(order_id, ln["line_id"], ln["delivered_quantity"]),
                    self.ask_return(order_id, ln["line_id"], ln["delivered_quantity"]),
                ),
            )
        for ret in view.get("returns", []):
            if ret["type"] != "CANCEL" and ret["status"] == "OPEN":
                add(2, lambda r=ret: self.receive(order_id, r))  # type: ignore[misc]
                add(
                    0.3,  # the parcel reported twice at once: counted once
                    lambda r=ret: self.together(  # type: ignore[misc]
                        self.receive(order_id, r), self.receive(order_id, r)
                    ),
                )
        return ops

    async def together(self, *messages: Coroutine[Any, Any, None]) -> None:
        """Messages sent at the same moment (a race the burst asks for explicitly)."""
        await asyncio.gather(*messages)

    def pick(
        self, order_id: str, key: str, location_id: str, full: dict[str, int], kind: str
    ) -> Coroutine[Any, Any, None]:
        picked = dict(full)
        if kind == "pick_zero":
            picked = dict.fromkeys(full, 0)
        elif kind == "pick_short":
            short = self.rng.choice(sorted(full))
            picked[short] = self.rng.randint(0, max(0, full[short] - 1))
        lines = [{"line_id": lid, "picked_quantity": q} for lid, q in sorted(picked.items())]
        return self.store_report(kind, order_id, key, location_id, {"lines": lines})

    def ship(self, order_id: str, key: str, location_id: str) -> Coroutine[Any, Any, None]:
        payload = {"carrier": "DHL", "tracking_number": f"T-{self.rng.randint(1000, 9999)}"}
        return self.store_report("ship", order_id, key, location_id, payload)

    def deliver(self, order_id: str, key: str, location_id: str) -> Coroutine[Any, Any, None]:
        return self.store_report("deliver", order_id, key, location_id, {})

    def receive_transfer(self, order_id: str, key: str) -> Coroutine[Any, Any, None]:
        """The pickup store received the transfer shipped on `key` (its hand-over key-H)."""
        return self.store_report("receive_transfer", order_id, f"{key}-H", PICKUP_STORE, {})

    async def ask_return(self, order_id: str, line_id: str, quantity: int) -> None:
        """The web shop asks for a return of delivered units (more than returnable: 422)."""
        await self.request(
            "return",
            order_id,
            "POST",
            f"/v1/orders/{order_id}/returns",
            key=self.orders[order_id].shop_key,
            payload={
                "lines": [{"line_id": line_id, "quantity": quantity}],
                "reason_code": self.rng.choice(("changed_mind", "damaged", "defective")),
            },
        )

    async def receive(self, order_id: str, ret: dict[str, Any]) -> None:
        """The receiving location says what the parcel held (some units may be missing)."""
        lines = [
            {
                "line_id": line["line_id"],
                "quantity": self.rng.randint(0, line["quantity"]),
                "condition": self.rng.choice(("new", "opened", "damaged", "defective")),
            }
            for line in ret["lines"]
        ]
        await self.request(
            "receive",
            order_id,
            "POST",
            f"/v1/returns/{ret['return_id']}/receive",
            key=ret["location_id"] if self.rng.random() < 0.7 else "ops",
            payload={"lines": lines},
        )

    async def track(self, order_id: str, key: str, location_id: str, outcome: str) -> None:
        """A carrier's tracking events: delivered, or three failed attempts (back to the
        sender); event ids may repeat."""
        self.tracking += 1
        n = self.tracking
        if outcome == "delivered":
            events = [
                {"event_id": f"t{n}-1", "status": "IN_TRANSIT", "at": "2026-11-20T08:00:00Z"},
                {"event_id": f"t{n}-2", "status": "DELIVERED", "at": "2026-11-20T12:00:00Z"},
            ]
        else:
            events = [
                {
                    "event_id": f"t{n}-{i}",
                    "status": "DELIVERY_FAILED",
                    "at": f"2026-11-2{i}T09:00:00Z",
                }
                for i in (1, 2, 3)
            ]
        await self.request(
            f"track_{outcome}",
            order_id,
            "POST",
            f"/v1/shipments/{key}/tracking",
            key=location_id,
            payload={"events": events},
        )

    def choose(self, ops: list[tuple[float, Factory]]) -> Factory:
        return self.rng.choices([f for _, f in ops], [w for w, _ in ops])[0]

    def early_burst(self, info: OrderInfo) -> list[Coroutine[Any, Any, None]]:
        """Messages that reach an order while it validates and routes."""
        oid = info.order_id
        rng = self.rng
        options: list[Factory] = [
            lambda: self.cancel(oid, None, self.canceller(oid)),
            lambda: self.cancel(oid, self.some_lines(oid), self.canceller(oid)),
            lambda: self.add_stock(oid, rng.choice(LOCATIONS), rng.choice(self.skus), 2),
            lambda: self.work_orders(oid, rng.choice(LOCATIONS)),
        ]
        if info.held:
            options.append(lambda: self.resume(oid, fixed=True))
        if info.channel == self.channels["appr"]:
            options.append(lambda: self.decide(oid, "credit", self.approvers[0], "approve"))
        burst = [rng.choice(options)() for _ in range(rng.randint(1, 3))]
        return burst

    # ------------------------------------------------------------------ phases
    async def random_phase(self) -> None:
        self.phase = "random"
        rng = self.rng
        in_flight: set[asyncio.Task[None]] = set()
        for step in range(self.steps):
            STEP.set(f"random#{step + 1}")
            left = self.max_orders - len(self.orders)
            room = max(1.0, self.steps * 0.6 - step)
            burst: list[Coroutine[Any, Any, None]] = []
            if left > 0 and (not self.orders or rng.random() < max(0.3, left / room)):
                info = self.new_order()
                if await self.create(info) and rng.random() < 0.2:
                    burst = self.early_burst(info)
            if not burst and self.orders:
                burst = await self.plan_burst()
            if burst:
                # overlapping bursts: the next step starts while this one is under way
                in_flight.add(asyncio.create_task(self.run_burst(burst)))
            while len(in_flight) >= PARALLEL:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        if in_flight:
            await asyncio.wait(in_flight)
        STEP.set("settled")

    async def plan_burst(self) -> list[Coroutine[Any, Any, None]]:
        rng = self.rng
        ids = sorted(self.orders)
        live = [oid for oid in ids if self.last_status.get(oid) not in ENDED]
        target = rng.choice(live if live and rng.random() < 0.9 else ids)
        view = await self.read(target)
        ops = self.plan(target, view)
        burst = [self.choose(ops)() for _ in range(rng.choice((1, 1, 2, 2, 3)))]
        if rng.random() < 0.08:
            burst.append(ops[0][1]())  # a cancel racing with the rest
        if rng.random() < 0.15:
            burst.append(
                self.add_stock(
                    None, rng.choice(LOCATIONS), rng.choice(self.skus), rng.randint(1, 3)
                )
            )
        if len(ids) > 1 and rng.random() < 0.25:
            other = rng.choice([oid for oid in ids if oid != target])
            burst.append(self.choose(self.plan(other, await self.read(other)))())
        return burst

    async def run_burst(self, burst: list[Coroutine[Any, Any, None]]) -> None:
        results = await asyncio.gather(*burst, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):  # the test's own machinery broke
                self.violate(
                    Violation("test-error", STEP.get(), f"{type(result).__name__}: {result}")
                )

    @staticmethod
    def release_ids(view: dict[str, Any] | None) -> list[str]:
        """The release workflows the order view knows of."""
        seqs = {int(r["release_key"].rsplit("-R", 1)[1]) for r in (view or {}).get("releases", [])}
        return (
            [fulfillment_workflow_id(view["order_id"], seq) for seq in sorted(seqs)] if view else []
        )

    def statuses(self) -> str:
        seen = Counter(self.last_status.get(oid, "?") for oid in self.orders)
        return ", ".join(f"{s} {n}" for s, n in sorted(seen.items()))

    async def settle(self) -> None:
        """Wait until every order's workflow and releases have no work in flight (only
        waits for outside messages or long timers), twice in a row with nothing new."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        previous: tuple[int, ...] | None = None
        while True:
            ids = sorted(self.orders)
            runs = await asyncio.gather(
                *(workflow_runs(self.stack.client, order_workflow_id(oid)) for oid in ids)
            )
            busy = {
                oid: [f"{r.workflow_id}: {r.busy}" for r in order_runs if r.busy]
                for oid, order_runs in zip(ids, runs, strict=True)
            }
            busy = {oid: why for oid, why in busy.items() if why}
            fingerprint = tuple(sum(r.events for r in order_runs) for order_runs in runs)
            if not busy and fingerprint == previous:
                return
            previous = None if busy else fingerprint
            if loop.time() > deadline:
                for oid, why in sorted(busy.items()):
                    self.violate(
                        Violation(
                            "not-settled",
                            f"order {oid}",
                            f"still busy after {SETTLE_SECONDS:g}s: {'; '.join(why)}",
                            (oid,),
                        )
                    )
                return
            await asyncio.sleep(POLL)

    async def drive_to_end(self) -> None:
        """Cancel what can be cancelled, ship and deliver the rest, until every order
        is CANCELLED, COMPLETED or DELIVERED."""
        self.phase = "end"
        STEP.set("end")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRIVE_SECONDS
        cancels: Counter[str] = Counter()
        while True:
            ids = sorted(self.orders)
            views = dict(zip(ids, await asyncio.gather(*(self.read(o) for o in ids)), strict=True))
            open_ids = [o for o in ids if (views[o] or {}).get("status") not in ENDED]
            if not open_ids:
                return
            if loop.time() > deadline:
                for oid in open_ids:
                    view = views[oid]
                    lines = [(ln["line_id"], ln["status"]) for ln in (view or {}).get("lines", [])]
                    self.violate(
                        Violation(
                            "order-not-ended",
                            f"order {oid}",
                            f"still {view['status'] if view else 'unreadable'} after "
                            f"{DRIVE_SECONDS:g}s of driving it to an end; lines {lines}",
                            (oid,),
                        )
                    )
                return
            reports: set[tuple[str, str, str, str]] = set()  # a shipment has a row per line
            cancel: list[Coroutine[Any, Any, None]] = []
            for oid in open_ids:
                view = views[oid]
                if view is None:
                    continue
                for s in view["shipments"]:
                    if s["status"] in ("SHIPPED", "PICKED", "READY_FOR_PICKUP"):
                        state = s["status"]
                        if state == "SHIPPED" and self.orders[oid].transfer(
                            view, s["shipment_key"]
                        ):
                            state = "IN_TRANSFER"
                        reports.add((oid, state, s["shipment_key"], s["location_id"]))
                cancellable = any(
                    ln["status"] not in ("SHIPPED", "DELIVERED", "CANCELLED")
                    for ln in view["lines"]
                )
                if cancellable and cancels[oid] < 3:
                    cancels[oid] += 1
                    cancel.append(self.cancel(oid, None, "ops"))
            fulfil = [
                self.receive_transfer(oid, key)
                if state == "IN_TRANSFER"
                else (self.ship if state == "PICKED" else self.deliver)(oid, key, loc)
                for oid, state, key, loc in sorted(reports)
            ]
            if fulfil:
                await asyncio.gather(*fulfil)
            if cancel:
                await asyncio.gather(*cancel)
            if not fulfil and not cancel:
                await asyncio.sleep(POLL)

    async def check(self, *, final: bool) -> None:
        ids = sorted(self.orders)
        views = await asyncio.gather(*(self.read(o) for o in ids))
        facts: list[OrderFacts] = []
        for oid, view in zip(ids, views, strict=True):
            if view is None:
                self.violate(Violation("order-unreadable", f"order {oid}", "GET failed", (oid,)))
                continue
            facts.append(
                await order_facts(
                    self.stack.client,
                    self.stack.store,
                    oid,
                    order_workflow_id(oid),
                    view,
                    self.release_ids(view),
                )
            )
        store = await read_store(self.stack.store, self.skus, ids, self.adjustment_prefix)
        found: list[Violation] = []
        for f in facts:
            found += check_terminal_kept(f)
            found += check_no_stage_after_cancel(f)
            found += check_status_agreement(f)
            found += check_workflows(f)
            found += check_lines(f, store)
            found += check_projection(f, store)
            found += check_status_matches_lines(f)
            found += check_cancels_applied(f, self.accepted_cancels.get(f.order_id, {}))
        found += check_stock(store, self.initial, self.skus)
        found += check_releases(store)
        if final:
            statuses = {f.order_id: f.view.get("status") for f in facts}
            found += check_no_live_reservations(store, statuses)
        found += await self.failed_in_visibility()
        for v in found:
            self.violate(v)

    async def failed_in_visibility(self) -> list[Violation]:
        """The run's workflows that closed otherwise than completed, as listed by Temporal
        (the histories are checked too; this is what an engineer's search shows)."""
        query = (
            f'WorkflowId STARTS_WITH "order-{self.prefix}" AND ExecutionStatus != "Running" '
            'AND ExecutionStatus != "Completed" AND ExecutionStatus != "ContinuedAsNew"'
        )
        found = []
        async for wf in self.stack.client.list_workflows(query):
            status = wf.status.name if wf.status else "?"
            order_id = wf.id.removeprefix("order-").split("-release-")[0]
            found.append(
                Violation(
                    "workflow-failed",
                    f"workflow {wf.id}",
                    f"listed by Temporal as {status}",
                    (order_id,),
                )
            )
        return found

    # ------------------------------------------------------------------ report
    def summary(self) -> str:
        kinds = sorted({k for k, _ in self.counts})
        ops = "; ".join(
            f"{k}: "
            + ", ".join(f"{code} x{n}" for (kk, code), n in sorted(self.counts.items()) if kk == k)
            for k in kinds
        )
        return (
            f"chaos seed {self.seed} on {self.stack.backend}: {len(self.orders)} orders "
            f"(after the random phase: {self.after_random}; in the end: {self.statuses()}), "
            f"{self.steps} steps, SKUs {self.skus}\noperations by kind and answer: {ops}"
        )

    def report(self) -> str:
        lines = [self.summary()]
        if not self.violations and not VERBOSE:
            return lines[0]
        involved: list[str] = sorted(self.orders) if VERBOSE else []
        phases: dict[str, list[str]] = {}  # one line per violation, with the checks it broke
        for phase, v in self.violations:
            seen = phases.setdefault(str(v), [])
            if phase not in seen:
                seen.append(phase)
            involved += [o for o in v.order_ids if o not in involved]
        lines.append(
            f"{len(phases)} invariant violations "
            f"(re-run: OMS_CHAOS_SEED={self.seed} OMS_CHAOS_STEPS={self.steps} "
            f"OMS_CHAOS_ORDERS={self.max_orders}):"
        )
        for text, seen in phases.items():
            lines.append(
                f"  seed {self.seed} {self.stack.backend} (after {' / '.join(seen)}): {text}"
            )
        for oid in involved:
            lines.append(f"operation log of order {oid}:")
            lines += [f"    {entry}" for entry in self.logs.get(oid, [])]
        if self.logs.get("-"):
            lines.append("operations on no order (stock arrivals):")
            lines += [f"    {entry}" for entry in self.logs["-"]]
        return "\n".join(lines)


async def test_random_interleavings_keep_the_order_invariants(stack: Stack) -> None:
    chaos = Chaos(stack, SEED, STEPS, ORDERS)
    print(f"\nchaos seed {SEED} on {stack.backend}: {STEPS} steps, {ORDERS} orders")
    await chaos.setup()
    await chaos.random_phase()
    chaos.phase = "random phase settled"
    await chaos.settle()
    await chaos.check(final=False)
    chaos.after_random = chaos.statuses()
    await chaos.drive_to_end()
    chaos.phase = "every order driven to an end"
    await chaos.settle()
    await chaos.check(final=True)
    print(chaos.summary())
    if chaos.violations or VERBOSE:
        report = chaos.report()
        if chaos.violations:
            pytest.fail(report, pytrace=False)
        print(report)
