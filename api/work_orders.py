"""Work orders by their id, whatever their kind (issue 10, point 3):

- PACKAGING (an order's release at a location): POST /v1/work-orders/{id}/pick, /ship,
  /deliver are the same steps as on its shipment (/v1/shipments/{key}/...).
- TRANSFER (click and collect from another location: units shipped to the pickup store):
  /pick and /ship; the pickup store's hand-over work order (ORDER-WO{n}-H, PACKAGING) is
  /receive (the transfer arrived: ready for pickup), then /deliver (handed over).
- RETURN_TO_VENDOR (returned units the receiving location sends to the vendor):
  POST /v1/work-orders/{id}/ship `{carrier, tracking_number}` closes it (a repeat with
  the same shipment is 200 again; another after it shipped is 409).

A location key reaches its own location's work orders; ops any.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from api.auth import require
from api.context import STORE
from api.errors import ApiError, parse, read_json
from api.fulfillment import send_report
from api.messages import PickRequest
from store.returns import VendorWorkOrder
from store.tables import WorkOrder
from workflows.model import DeliverReport, ReceiveTransferReport, ShipReport

routes = web.RouteTableDef()

PACKAGING_STEPS: dict[str, tuple[str, type[BaseModel]]] = {
    "pick": ("report_pick", PickRequest),
    "ship": ("report_ship", ShipReport),
    "deliver": ("report_delivery", DeliverReport),
    "receive": ("report_receipt", ReceiveTransferReport),
}


async def visible_work_order(request: web.Request) -> WorkOrder:
    """The work order the path's {work_order_id} names, if the caller may reach it."""
    principal = require(request, "location", "ops")
    work_order_id = request.match_info["work_order_id"]
    async with request.app[STORE].db.sessions() as session:
        row = await session.get(WorkOrder, work_order_id)
    if row is None or (principal.role == "location" and principal.identity != row.location_id):
        raise ApiError(404, "work_order_not_found", f"no work order {work_order_id}")
    return row


async def ship_to_vendor(
    request: web.Request, row: WorkOrder, report: ShipReport
) -> VendorWorkOrder:
    """Close a RETURN_TO_VENDOR work order with its shipment (the API's and the back
    office's ship): the same shipment again changes nothing, another one is a 409."""
    vendor = request.app[STORE].returns.vendor_work_orders
    if not await vendor.ship(row.work_order_id, report.carrier, report.tracking_number):
        shipped = await vendor.get(row.work_order_id)
        same = shipped is not None and (shipped.carrier, shipped.tracking_number) == (
            report.carrier,
            report.tracking_number,
        )
        if not same:
            raise ApiError(409, "not_pending", f"{row.work_order_id} has shipped already")
    shipped = await vendor.get(row.work_order_id)
    assert shipped is not None
    return shipped


@routes.post("/v1/work-orders/{work_order_id}/{step}")
async def work_order_step(request: web.Request) -> web.Response:
    row = await visible_work_order(request)
    step = request.match_info["step"]
    body = await read_json(request) if request.can_read_body else {}
    if row.kind == "RETURN_TO_VENDOR":
        if step != "ship":
            raise ApiError(404, "unknown_step", "a RETURN_TO_VENDOR work order is shipped")
        shipped = await ship_to_vendor(request, row, parse(ShipReport, body))
        return web.json_response(shipped.as_json())
    if step not in PACKAGING_STEPS:
        raise ApiError(
            404,
            "unknown_step",
            "a PACKAGING work order is picked, shipped, delivered; a TRANSFER is picked and "
            "shipped; a pickup store's hand-over is received and delivered",
        )
    update, model = PACKAGING_STEPS[step]
    # WO{n} is reported on its shipment S{n} (workflows/order_state.py), WO{n}-H on S{n}-H
    suffix = row.work_order_id[len(row.order_id) + 3 :]
    shipment_key = f"{row.order_id}-S{suffix}"
    return await send_report(request, shipment_key, update, parse(model, body))
