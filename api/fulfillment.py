"""Store and warehouse routes: work orders, pick / ship / deliver reports, documents."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api.auth import require
from api.commands import execute_update
from api.context import STORE, TEMPORAL
from api.errors import ApiError, parse, read_json, workflow_error
from api.messages import PickRequest
from store.fulfillment import ShipmentRecord
from workflows.model import DeliverReport, ShipReport, StoreReportResult

routes = web.RouteTableDef()


def shipment_json(record: ShipmentRecord) -> dict[str, Any]:
    return {
        "shipment_key": record.shipment_key,
        "release_key": record.release_key,
        "order_id": record.order_id,
        "location_id": record.location_id,
        "status": record.status,
        "carrier": record.carrier,
        "tracking_number": record.tracking_number,
        "lines": [
            {
                "line_id": ln.line_id,
                "released_quantity": ln.released_quantity,
                "picked_quantity": ln.picked_quantity,
                "quantity": ln.quantity,
                "status": ln.status,
            }
            for ln in record.lines
        ],
    }


@routes.get("/v1/locations/{location_id}/work-orders")
async def work_orders(request: web.Request) -> web.Response:
    principal = require(request, "location", "ops")
    location_id = request.match_info["location_id"]
    if principal.role == "location" and principal.identity != location_id:
        raise ApiError(403, "forbidden", f"this key belongs to location {principal.identity}")
    records = await request.app[STORE].fulfillment.open_shipments(location_id)
    return web.json_response({"work_orders": [shipment_json(r) for r in records]})


async def _report(request: web.Request, update: str, model: type[BaseModel]) -> web.Response:
    principal = require(request, "location", "ops")
    key = request.match_info["shipment_key"]
    record = await request.app[STORE].fulfillment.shipment(key)
    if record is None or (
        principal.role == "location" and principal.identity != record.location_id
    ):
        raise ApiError(404, "shipment_not_found", f"no shipment {key}")
    body = await read_json(request) if request.can_read_body else {}
    report = parse(model, body)
    handle = request.app[TEMPORAL].get_workflow_handle(record.workflow_id)
    try:
        result = await execute_update(
            request, handle, update, report, result_type=StoreReportResult
        )
    except Exception as err:
        raise workflow_error(err, "not_pending") from err
    return web.json_response(text=result.model_dump_json())


@routes.post("/v1/shipments/{shipment_key}/pick")
async def pick(request: web.Request) -> web.Response:
    return await _report(request, "report_pick", PickRequest)


@routes.post("/v1/shipments/{shipment_key}/ship")
async def ship(request: web.Request) -> web.Response:
    return await _report(request, "report_ship", ShipReport)


@routes.post("/v1/shipments/{shipment_key}/deliver")
async def deliver(request: web.Request) -> web.Response:
    return await _report(request, "report_delivery", DeliverReport)


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
    return web.Response(
        body=found[2],
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{document_id}.pdf"'},
    )
