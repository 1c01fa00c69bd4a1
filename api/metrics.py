"""The API's Prometheus metrics (GET /metrics): request latency and answers by route, and
business gauges read from the store on each scrape.

Every app has its own registry (tests run many apps in one process). Label values are
bounded: routes are the app's route templates (`/v1/orders/{order_id}`, never the raw
URL), methods and error codes are the API's own, hold reasons are reduced to the stage
they come from."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, literal, not_, select

from api.errors import Handler
from store import Store
from store.fulfillment import WORK_ORDER_STATUSES
from store.tables import Approval, Order, OrderLine, Shipment, WorkOrder

log = logging.getLogger("oms.api.metrics")

# how long a scrape waits for the store before it answers with what it has
STORE_SECONDS = 2.0
# at most this many orders' hold reasons are read per scrape (oldest changes first)
HELD_SCAN_LIMIT = 10_000
# orders whose workflow has nothing more to do: their hold reasons do not count
FINAL_STATUSES = ("COMPLETED", "CANCELLED", "DECLINED")
# the stage a hold reason comes from: the first word of the text before its ':' when it
# is one of these ("submission: WO1 to WH-1 refused: ...", "routing failing after 6
# attempts, retrying: ..."). Reasons without one name a validation rule ("payment is not
# authorized": the order is ON_HOLD) or a line routing could not place ("line 1: no
# location has 2 x SKU-1": it waits for stock or an assignment)
HOLD_STAGES = ("validation", "routing", "response", "submission", "approval", "documents")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def hold_stage(reason: str, order_status: str) -> str:
    """The stage a hold reason of an order in `order_status` comes from (HOLD_STAGES)."""
    head = reason.split(":", 1)[0].strip().lower()
    first = head.split(" ", 1)[0] if head else ""
    if first in HOLD_STAGES:
        return first
    return "validation" if order_status == "ON_HOLD" else "routing"


class ApiMetrics:
    """One app's request metrics, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "oms_http_request_duration_seconds",
            "Time to answer a request, by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "oms_http_responses",
            "Answers by method, route template, status and error code (none for a success)",
            ["method", "route", "status", "code"],
            registry=self.registry,
        )

    def observe(self, request: web.Request, status: int, code: str, started: float) -> None:
        method = request.method if request.method in METHODS else "other"
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        labels = (method, route, str(status))
        self.latency.labels(*labels).observe(time.perf_counter() - started)
        self.responses.labels(*labels, code).inc()


METRICS = web.AppKey("metrics", ApiMetrics)


def _error_code(response: web.StreamResponse) -> str:
    """The `error.code` of an error answer (api/errors.py), "none" for others."""
    if response.status < 400:
        return "none"
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or len(body) > 65536:
        return "other"
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "other"
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "other"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: sees every answer as sent, error answers included."""
    started = time.perf_counter()
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except web.HTTPException as err:  # redirects and the like, answered by aiohttp
        metrics.observe(request, err.status, "none" if err.status < 400 else "http_error", started)
        raise
    except Exception:
        metrics.observe(request, 500, "internal_error", started)
        raise
    metrics.observe(request, response.status, _error_code(response), started)
    return response


@dataclass
class Snapshot:
    """What the store said during one scrape; None: not read (the store failed first)."""

    orders: dict[str, int] | None = None
    held: dict[str, int] | None = None
    held_scanned: int = 0
    approvals_pending: int | None = None
    backorder_lines: int | None = None
    work_orders: dict[str, int] | None = None
    store_up: bool = False
    errors: list[str] = field(default_factory=list)


async def read_snapshot(store: Store, seconds: float = STORE_SECONDS) -> Snapshot:
    """The business numbers, each as soon as it is read; a store that fails or takes
    longer than `seconds` leaves the rest None and store_up False."""
    snap = Snapshot()
    try:
        async with asyncio.timeout(seconds):
            await _read(store, snap)
    except Exception as err:  # unreachable, timed out, a query failed
        log.warning("metrics: the store did not answer: %s: %s", type(err).__name__, err)
        snap.errors.append(type(err).__name__)
        return snap
    snap.store_up = True
    return snap


async def _read(store: Store, snap: Snapshot) -> None:
    async with store.db.sessions() as session:
        rows = await session.execute(select(Order.status, func.count()).group_by(Order.status))
        snap.orders = {str(status): int(n) for status, n in rows.all()}

        # orders that wait for something, and why: their views' hold reasons (a view
        # without any is skipped by the query; the test is only an optimisation)
        views = await session.execute(
            select(Order.status, Order.view)
            .where(
                Order.status.not_in(FINAL_STATUSES),
                Order.view.is_not(None),
                not_(Order.view.contains('"hold_reasons":[]', autoescape=True)),
            )
            .order_by(Order.updated_at.desc())
            .limit(HELD_SCAN_LIMIT)
        )
        held = dict.fromkeys(HOLD_STAGES, 0)
        for status, view in views.all():
            snap.held_scanned += 1
            try:
                reasons = json.loads(view or "{}").get("hold_reasons") or []
            except (ValueError, AttributeError):
                continue
            for stage in {hold_stage(str(r), status) for r in reasons}:
                held[stage] += 1
        snap.held = held

        rows = await session.execute(
            select(func.count()).select_from(Approval).where(Approval.status == "pending")
        )
        snap.approvals_pending = int(rows.scalar_one())

        rows = await session.execute(
            select(func.count())
            .select_from(OrderLine)
            .join(Order, Order.order_id == OrderLine.order_id)
            .where(OrderLine.status == "BACKORDERED", Order.status.not_in(FINAL_STATUSES))
        )
        snap.backorder_lines = int(rows.scalar_one())

        snap.work_orders = await _work_orders(session)


async def _work_orders(session: object) -> dict[str, int]:
    """Work orders by status as the API shows them (store/fulfillment.py: the least
    advanced of their lines'; nothing left to do is CANCELLED when their work_orders row
    was cancelled, else BACKORDERED), counted in the database."""
    rank = case(
        {s: i for i, s in enumerate(WORK_ORDER_STATUSES, start=1)},
        value=Shipment.status,
        else_=len(WORK_ORDER_STATUSES),
    )
    # S{n} -> WO{n}: the work order's row (store/fulfillment.py work_order_id_of)
    work_order_id = (
        Shipment.order_id
        + literal("-WO")
        + func.substr(Shipment.shipment_key, func.length(Shipment.order_id) + 3)
    )
    per_shipment = (
        select(
            func.min(rank).label("rank"),
            func.max(case((WorkOrder.status == "CANCELLED", 1), else_=0)).label("closed"),
        )
        .select_from(Shipment)
        .outerjoin(WorkOrder, and_(WorkOrder.work_order_id == work_order_id))
        .group_by(Shipment.shipment_key)
        .subquery()
    )
    rows = await session.execute(  # type: ignore[attr-defined]
        select(per_shipment.c.rank, per_shipment.c.closed, func.count()).group_by(
            per_shipment.c.rank, per_shipment.c.closed
        )
    )
    counts = dict.fromkeys(WORK_ORDER_STATUSES, 0)
    for rank_value, closed, n in rows.all():
        status = WORK_ORDER_STATUSES[min(int(rank_value), len(WORK_ORDER_STATUSES)) - 1]
        if status == "BACKORDERED" and closed:
            status = "CANCELLED"
        counts[status] += int(n)
    return counts


class BusinessCollector(Collector):
    """The gauges of one scrape's Snapshot (the numbers the store did not give are left
    out; `oms_store_up` says whether it answered)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        up = GaugeMetricFamily(
            "oms_store_up", "1 when the store answered this scrape's queries in time, else 0"
        )
        up.add_metric([], 1.0 if snap.store_up else 0.0)
        yield up
        if snap.orders is not None:
            orders = GaugeMetricFamily("oms_orders", "Orders by status", labels=["status"])
            for status, n in sorted(snap.orders.items()):
                orders.add_metric([status], n)
            yield orders
        if snap.held is not None:
            held = GaugeMetricFamily(
                "oms_orders_held",
                "Orders not finished that wait with a hold reason, by the stage it comes "
                "from (an order with reasons from two stages counts in both)",
                labels=["reason"],
            )
            for stage, n in snap.held.items():
                held.add_metric([stage], n)
            yield held
        if snap.approvals_pending is not None:
            approvals = GaugeMetricFamily(
                "oms_approvals_pending", "Approval requests waiting for an approver's decision"
            )
            approvals.add_metric([], snap.approvals_pending)
            yield approvals
        if snap.backorder_lines is not None:
            backorders = GaugeMetricFamily(
                "oms_backorder_lines_waiting",
                "Order lines with backordered units waiting for stock (orders not finished)",
            )
            backorders.add_metric([], snap.backorder_lines)
            yield backorders
        if snap.work_orders is not None:
            work_orders = GaugeMetricFamily(
                "oms_work_orders", "Work orders by status", labels=["status"]
            )
            for status, n in snap.work_orders.items():
                work_orders.add_metric([status], n)
            yield work_orders


async def exposition(metrics: ApiMetrics, store: Store) -> web.Response:
    """GET /metrics: the request metrics and this scrape's business gauges."""
    snap = await read_snapshot(store)
    body = generate_latest(metrics.registry) + generate_latest(BusinessCollector(snap))
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    return response
