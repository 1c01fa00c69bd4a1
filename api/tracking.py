"""Shipment tracking (issue 10, point 4): carriers' or the location's events for a
shipment, and its timeline.

- POST /v1/shipments/{key}/tracking (the shipping location, ops):
  `{events: [{event_id, status, at, place?, detail?}]}`. Each event counts once by its id
  (a repeat is acknowledged and changes nothing); the timeline is ordered by `at`, so
  events may arrive in any order. Each new event goes into the order's audit trail and to
  the channel's callback as a `tracking_update`; a new DELIVERED event delivers the
  shipment as `POST /v1/shipments/{key}/deliver` does; a RETURNED_TO_SENDER event, or
  the channel's `delivery_attempts_before_return`-th DELIVERY_FAILED (default 3), sends
  the shipment back to its location: the order gets a RETURN_TO_SENDER return.
- GET /v1/shipments/{key}/tracking (the location, ops, the order's web shop): the timeline.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio.client import RPCError
from temporalio.service import RPCStatusCode

from api.auth import require
from api.context import STORE, TEMPORAL
from api.errors import ApiError, CommandPending, parse, read_json, workflow_error
from api.fulfillment import send_report
from store import Principal
from store.fulfillment import ShipmentRecord
from store.tracking import TrackingEvent
from workflows.model import (
    DeliverReport,
    ReturnedToSenderReport,
    TrackingStatus,
    TrackingUpdate,
)
from workflows.order import order_workflow_id

routes = web.RouteTableDef()

MAX_EVENTS = 100
# the most events one shipment keeps (each reaches its order's history): a carrier past
# this is refused (409 too_many_events), so a runaway feed cannot grow an order forever
MAX_SHIPMENT_EVENTS = 200


class TrackingEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")
    status: TrackingStatus
    at: AwareDatetime
    place: str | None = Field(default=None, max_length=200)
    detail: str | None = Field(default=None, max_length=500)


class TrackingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[TrackingEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


async def _shipment(request: web.Request, principal: Principal) -> ShipmentRecord:
    key = request.match_info["shipment_key"]
    store = request.app[STORE]
    record = await store.fulfillment.shipment(key)
    visible = record is not None
    if record is not None and principal.role == "location":
        visible = principal.identity == record.location_id
    elif record is not None and principal.role == "webshop":
        order = await store.orders.get(record.order_id)
        visible = order is not None and order.sales_channel == principal.identity
    if not visible or record is None:
        raise ApiError(404, "shipment_not_found", f"no shipment {key}")
    return record


def _timeline(events: list[TrackingEvent]) -> list[dict[str, object]]:
    return [e.as_json() for e in events]


@routes.post("/v1/shipments/{shipment_key}/tracking")
async def report_tracking(request: web.Request) -> web.Response:
    principal = require(request, "location", "ops")
    record = await _shipment(request, principal)
    asked = parse(TrackingRequest, await read_json(request))
    store = request.app[STORE]
    # the same id twice in one message counts once, the first time
    unique: dict[str, TrackingEventIn] = {}
    for event in asked.events:
        unique.setdefault(event.event_id, event)
    known = await store.tracking.timeline(record.shipment_key)
    fresh_ids = set(unique) - {e.event_id for e in known}
    if len(known) + len(fresh_ids) > MAX_SHIPMENT_EVENTS:
        raise ApiError(
            409,
            "too_many_events",
            f"shipment {record.shipment_key} keeps at most {MAX_SHIPMENT_EVENTS} tracking "
            f"events; it has {len(known)}",
        )
    new = await store.tracking.record(
        record.shipment_key,
        record.order_id,
        [
            TrackingEvent(e.event_id, e.status, _utc(e.at), e.place, e.detail)
            for e in unique.values()
        ],
    )
    told = 0
    handle = request.app[TEMPORAL].get_workflow_handle(order_workflow_id(record.order_id))
    for fresh in sorted(new, key=lambda e: (e.at, e.event_id)):
        update = TrackingUpdate(
            shipment_key=record.shipment_key,
            event_id=fresh.event_id,
            status=fresh.status,
            at=fresh.at,
            place=fresh.place,
            detail=fresh.detail,
            location_id=record.location_id,
            carrier=record.carrier,
            tracking_number=record.tracking_number,
        )
        try:
            await handle.signal("tracking_event", update)
            told += 1
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise workflow_error(err) from err
            # the order's workflow has closed: the timeline keeps the event all the same
    timeline = await store.tracking.timeline(record.shipment_key)
    delivered = any(e.status == "DELIVERED" for e in new)
    # the carrier gives up: told so, or after the channel's number of failed attempts
    attempts = await _attempts_before_return(request, record.order_id)
    failures = sum(1 for e in timeline if e.status == "DELIVERY_FAILED")
    back = any(e.status == "RETURNED_TO_SENDER" for e in new) or (
        any(e.status == "DELIVERY_FAILED" for e in new) and failures >= attempts
    )
    shipment_update: dict[str, str] | None = None
    if record.status == "SHIPPED" and (delivered or back):
        update_name, report = (
            ("report_delivery", DeliverReport())
            if delivered
            else (
                "report_returned_to_sender",
                ReturnedToSenderReport(
                    reason=f"returned to sender after {failures} failed delivery attempts"
                ),
            )
        )
        try:
            await send_report(request, record.shipment_key, update_name, report)
            shipment_update = {"status": "done", "update": update_name}
        except CommandPending as pending:
            # the events are recorded; the shipment's step is on its way (look it up)
            shipment_update = {**pending.body(), "update": update_name}
        except ApiError as err:
            if err.status != 409:  # delivered or returned meanwhile: nothing to do
                raise
    return web.json_response(
        {
            "shipment_key": record.shipment_key,
            "recorded": len(new),
            "repeated": len(asked.events) - len(new),
            "told_order": told,
            "shipment_update": shipment_update,
            "timeline": _timeline(timeline),
        }
    )


async def _attempts_before_return(request: web.Request, order_id: str) -> int:
    store = request.app[STORE]
    order = await store.orders.get(order_id)
    channel = (await store.config.channel(order.sales_channel) if order else None) or {}
    try:
        return max(int(channel.get("delivery_attempts_before_return", 3)), 1)
    except (TypeError, ValueError):
        return 3


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


@routes.get("/v1/shipments/{shipment_key}/tracking")
async def get_tracking(request: web.Request) -> web.Response:
    principal = require(request, "location", "ops", "webshop")
    record = await _shipment(request, principal)
    timeline = await request.app[STORE].tracking.timeline(record.shipment_key)
    return web.json_response(
        {
            "shipment_key": record.shipment_key,
            "order_id": record.order_id,
            "status": record.status,
            "carrier": record.carrier,
            "tracking_number": record.tracking_number,
            "timeline": _timeline(timeline),
        }
    )
