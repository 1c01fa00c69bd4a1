"""Store and warehouse routes: work orders, pick / ship / deliver reports, documents."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api import query
from api.auth import require
from api.commands import execute_update
from api.context import STORE, TEMPORAL
from api.errors import ApiError, parse, read_json, workflow_error
from api.messages import PickRequest
from store.database import utcnow
from store.fulfillment import WORK_ORDER_STATUSES, ShipmentRecord
from workflows.model import (
    HANDOVER_SUFFIX,
    DeliverReport,
    ReceiveTransferReport,
    ShipReport,
    StoreReportResult,
)

routes = web.RouteTableDef()


# the default work-order list: the open ones and those cancelled in the last CANCELLED_DAYS
OPEN_WORK_ORDERS = ("AWAITING_TRANSFER", "OPEN", "PICKED", "SHIPPED", "READY_FOR_PICKUP")
CANCELLED_DAYS = 7
# how long a report on a release whose workflow is being started waits for the start
RELEASE_START_SECONDS = 5.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def shipment_json(record: ShipmentRecord) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "work_order_id": record.work_order_id,
        "kind": record.kind,
        "shipment_key": record.shipment_key,
        "release_key": record.release_key,
        "order_id": record.order_id,
        "location_id": record.location_id,
        "status": record.status,
        "released_at": _time(record.released_at),
        "cancelled_at": _time(record.cancelled_at),
        "carrier": record.carrier,
        "tracking_number": record.tracking_number,
        "lines": [
            {
                "line_id": ln.line_id,
                "released_quantity": ln.released_quantity,
                "picked_quantity": ln.picked_quantity,
                "quantity": ln.quantity,
                "status": ln.status,
                "cancelled_at": _time(ln.cancelled_at),
            }
            for ln in record.lines
        ],
    }
    if record.kind == "TRANSFER":
        answer["destination_id"] = record.destination_id
        answer["handover_work_order_id"] = record.work_order_id + HANDOVER_SUFFIX
    elif record.shipment_key.endswith(HANDOVER_SUFFIX):
        answer["transfer_work_order_id"] = record.work_order_id[: -len(HANDOVER_SUFFIX)]
    answer["steps"] = list(allowed_steps(record))
    return answer


# which store reports each kind of shipment takes (the API names of the steps)
STEP_OF_UPDATE = {
    "report_pick": "pick",
    "report_ship": "ship",
    "report_delivery": "deliver",
    "report_receipt": "receive",
}


def allowed_steps(record: ShipmentRecord) -> tuple[str, ...]:
    """PACKAGING: pick, ship, deliver; a TRANSFER: pick and ship (to the pickup store);
    the pickup store's hand-over of a transfer: receive, then deliver (hand over)."""
    if record.shipment_key.endswith(HANDOVER_SUFFIX):
        return ("receive", "deliver")
    if record.kind == "TRANSFER":
        return ("pick", "ship")
    return ("pick", "ship", "deliver")


class WorkOrderLineOut(BaseModel):
    line_id: str
    released_quantity: int
    picked_quantity: int
    quantity: int = Field(description="shipped units (0 until the line ships)")
    status: str = Field(description="OPEN, PICKED, SHIPPED, DELIVERED, BACKORDERED, CANCELLED")
    cancelled_at: datetime | None = Field(description="set when the line is CANCELLED")


class WorkOrderOut(BaseModel):
    work_order_id: str = Field(description="the work order sent to the location (ORDER-WO{n})")
    kind: str = Field(
        default="PACKAGING",
        description="PACKAGING: an order's release (or, ORDER-WO{n}-H, a pickup store's "
        "hand-over of transferred units); TRANSFER: units shipped to a pickup store",
    )
    shipment_key: str = Field(
        description="where the steps are reported (ORDER-S{n}; ORDER-S{n}-H for a hand-over)"
    )
    steps: list[str] = Field(
        description="the steps this work order takes: pick, ship, deliver (PACKAGING); pick, "
        "ship (TRANSFER); receive, deliver (a pickup store's hand-over of a transfer)"
    )
    destination_id: str | None = Field(
        default=None, description="TRANSFER: the pickup store the units are shipped to"
    )
    handover_work_order_id: str | None = Field(
        default=None, description="TRANSFER: the pickup store's hand-over work order"
    )
    transfer_work_order_id: str | None = Field(
        default=None, description="a hand-over: the TRANSFER work order bringing its units"
    )
    release_key: str
    order_id: str
    location_id: str
    status: str = Field(
        description="the work order's status: its least advanced line (AWAITING_TRANSFER, "
        "OPEN, PICKED, SHIPPED, READY_FOR_PICKUP, DELIVERED); with nothing left to do "
        "CANCELLED (the order cancelled it: stop picking it) or BACKORDERED (its units "
        "were routed elsewhere)"
    )
    released_at: datetime | None
    cancelled_at: datetime | None = Field(description="when it was cancelled (CANCELLED only)")
    carrier: str | None
    tracking_number: str | None
    lines: list[WorkOrderLineOut] = Field(description="every line, CANCELLED ones included")


class VendorWorkOrderOut(BaseModel):
    work_order_id: str = Field(description="{return_id}-RTV")
    kind: str = Field(description="RETURN_TO_VENDOR")
    status: str = Field(description="OPEN, SHIPPED")
    location_id: str
    return_id: str
    order_id: str
    items: list[dict[str, object]] = Field(description="line_id, sku, quantity")
    created_at: datetime
    carrier: str | None
    tracking_number: str | None
    updated_at: datetime | None


class WorkOrderList(BaseModel):
    """One page of a location's work orders of one kind (?kind=, default PACKAGING)."""

    work_orders: list[WorkOrderOut | VendorWorkOrderOut] = Field(description="newest first")
    total: int = Field(description="how many work orders match the filter")
    limit: int
    offset: int
    status: list[str] = Field(description="the statuses listed")
    cancelled_since: datetime | None = Field(
        description="without ?status=: CANCELLED ones are listed if cancelled since then"
    )


def _statuses(raw: str | None) -> list[str] | None:
    """?status=A,B: None when not given; 422 unknown_status for a value not listed."""
    if raw is None:
        return None
    wanted = [s.strip().upper() for s in raw.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in WORK_ORDER_STATUSES]
    if unknown or not wanted:
        problems = unknown or [raw]
        raise ApiError(
            422,
            "unknown_status",
            f"status is a comma list of {', '.join(WORK_ORDER_STATUSES)}",
            [
                {"field": "status", "message": f"unknown status {s!r}", "type": "unknown_status"}
                for s in problems
            ],
        )
    return list(dict.fromkeys(wanted))


@routes.get("/v1/locations/{location_id}/work-orders")
async def work_orders(request: web.Request) -> web.Response:
    """A location's work orders (its own for a location key), newest release first."""
    principal = require(request, "location", "ops")
    location_id = request.match_info["location_id"]
    if principal.role == "location" and principal.identity != location_id:
        raise ApiError(403, "forbidden", f"this key belongs to location {principal.identity}")
    limit = query.integer(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    kind = query.choice(request, "kind", WORK_ORDER_KINDS, "PACKAGING")
    if kind == "RETURN_TO_VENDOR":
        return await _vendor_work_orders(request, location_id, limit, offset)
    statuses = _statuses(request.query.get("status"))
    since = None if statuses is not None else utcnow() - timedelta(days=CANCELLED_DAYS)
    records, total = await request.app[STORE].fulfillment.work_orders(
        location_id,
        statuses=statuses,
        cancelled_since=since,
        limit=limit,
        offset=offset,
        kind=kind,
    )
    return web.json_response(
        {
            "work_orders": [shipment_json(r) for r in records],
            "total": total,
            "limit": limit,
            "offset": offset,
            "status": statuses or [*OPEN_WORK_ORDERS, "CANCELLED"],
            "cancelled_since": _time(since),
        }
    )


# PACKAGING: an order's release (pick, pack, ship to the customer, or hand over at a pickup
# store); TRANSFER: units shipped to a pickup store (click and collect); RETURN_TO_VENDOR:
# returned units the location sends back to the vendor (api/work_orders.py)
WORK_ORDER_KINDS = ("PACKAGING", "TRANSFER", "RETURN_TO_VENDOR")
VENDOR_STATUSES = ("OPEN", "SHIPPED")


async def _vendor_work_orders(
    request: web.Request, location_id: str, limit: int, offset: int
) -> web.Response:
    raw = request.query.get("status")
    statuses = None
    if raw is not None:
        statuses = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not statuses or any(s not in VENDOR_STATUSES for s in statuses):
            raise ApiError(
                422,
                "unknown_status",
                f"a RETURN_TO_VENDOR work order is {' or '.join(VENDOR_STATUSES)}",
                [
                    {
                        "field": "status",
                        "message": f"unknown status {raw!r}",
                        "type": "unknown_status",
                    }
                ],
            )
    records, total = await request.app[STORE].returns.vendor_work_orders.of_location(
        location_id, statuses, limit, offset
    )
    return web.json_response(
        {
            "work_orders": [r.as_json() for r in records],
            "total": total,
            "limit": limit,
            "offset": offset,
            "status": statuses or ["OPEN"],
            "cancelled_since": None,
        }
    )


async def _report(request: web.Request, update: str, model: type[BaseModel]) -> web.Response:
    require(request, "location", "ops")
    key = request.match_info["shipment_key"]
    await _shipment_of_caller(request, key)
    body = await read_json(request) if request.can_read_body else {}
    return await send_report(request, key, update, parse(model, body))


async def _shipment_of_caller(request: web.Request, key: str) -> ShipmentRecord:
    principal = require(request, "location", "ops")
    record = await request.app[STORE].fulfillment.shipment(key)
    if record is None or (
        principal.role == "location" and principal.identity != record.location_id
    ):
        raise ApiError(404, "shipment_not_found", f"no shipment {key}")
    return record


async def send_report(
    request: web.Request, key: str, update: str, report: BaseModel
) -> web.Response:
    """A location's report (report_pick, report_ship, report_delivery) on shipment `key`,
    if the caller may report on it; also what the back office (api/ui) sends."""
    record = await _shipment_of_caller(request, key)
    step = STEP_OF_UPDATE.get(update)
    if step is not None and step not in allowed_steps(record):
        raise ApiError(
            409,
            "wrong_step",
            f"{key} takes {', '.join(allowed_steps(record))}, not {step}",
        )
    handle = request.app[TEMPORAL].get_workflow_handle(record.workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RELEASE_START_SECONDS
    pause = 0.05
    while True:
        try:
            result = await execute_update(
                request, handle, update, report, result_type=StoreReportResult
            )
            break
        except Exception as err:
            # the order writes a release's rows while it starts the release's workflow:
            # a report that comes before the start waits for it (a release whose
            # workflow has run and ended is answered as before)
            if not (
                isinstance(err, RPCError)
                and err.status == RPCStatusCode.NOT_FOUND
                and await _starting_or_running(handle)
            ):
                raise workflow_error(err, "not_pending") from err
            if loop.time() + pause > deadline:
                raise ApiError(
                    503,
                    "release_starting",
                    f"the release of {key} is being started; report again shortly",
                ) from err
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
    return web.json_response(text=result.model_dump_json())


async def _starting_or_running(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether Temporal has no workflow of this id yet, or has it running (started since
    the update found none): the update is worth sending again. Temporal failing to answer
    is answered as such (503)."""
    try:
        described = await handle.describe(rpc_timeout=timedelta(seconds=5))
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise workflow_error(err) from err
    return described.status == WorkflowExecutionStatus.RUNNING


@routes.post("/v1/shipments/{shipment_key}/pick")
async def pick(request: web.Request) -> web.Response:
    return await _report(request, "report_pick", PickRequest)


@routes.post("/v1/shipments/{shipment_key}/ship")
async def ship(request: web.Request) -> web.Response:
    return await _report(request, "report_ship", ShipReport)


@routes.post("/v1/shipments/{shipment_key}/deliver")
async def deliver(request: web.Request) -> web.Response:
    return await _report(request, "report_delivery", DeliverReport)


@routes.post("/v1/shipments/{shipment_key}/receive")
async def receive(request: web.Request) -> web.Response:
    """A pickup store received a transfer (its hand-over shipment ORDER-S{n}-H)."""
    return await _report(request, "report_receipt", ReceiveTransferReport)


@routes.get("/v1/shipments/{shipment_key}")
async def get_shipment(request: web.Request) -> web.Response:
    principal = require(request, "location", "ops")
    key = request.match_info["shipment_key"]
    record = await request.app[STORE].fulfillment.shipment(key)
    if record is None or (
        principal.role == "location" and principal.identity != record.location_id
    ):
        raise ApiError(404, "shipment_not_found", f"no shipment {key}")
    return web.json_response(shipment_json(record))


@routes.get("/v1/documents/{document_id}")
async def document(request: web.Request) -> web.Response:
    principal = require(request, "ops", "location")
    document_id = request.match_info["document_id"]
    found = await request.app[STORE].orders.document(document_id)
    if found is None or (principal.role == "location" and principal.identity != found[1]):
        raise ApiError(404, "document_not_found", f"no document {document_id}")
    return pdf_response(document_id, found[2])


def pdf_response(document_id: str, content: bytes) -> web.Response:
    """A stored document as the PDF a browser shows inline."""
    return web.Response(
        body=content,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{document_id}.pdf"'},
    )
