"""Returns (RMA): the web shop or operations ask for one on a delivered order; the
receiving location reports what the parcel held; everybody lists them by order.

- POST /v1/orders/{order_id}/returns (webshop, ops): `{lines: [{line_id, quantity}],
  reason_code, comment?, location_id?}` -> 201 with the return, its label and note URLs;
  409 return_window_closed / not_returnable, 422 exceeds_delivered.
- POST /v1/returns/{return_id}/receive (the receiving location, ops):
  `{lines: [{line_id, quantity, condition}]}` -> the disposition per line and the refund.
- GET /v1/returns?order_id=&status=&location_id= (webshop: its channel's; location: the
  returns it receives; ops), GET /v1/returns/{return_id}, and its documents at
  /v1/returns/{return_id}/label and /v1/returns/{return_id}/note (PDF).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api import query
from api.auth import require
from api.commands import execute_update
from api.configuration import check_locations
from api.context import STORE, TEMPORAL
from api.errors import ApiError, parse, read_json, workflow_error
from api.fulfillment import pdf_response
from api.orders import visible_order
from store import Principal
from store.returns import ReturnRow
from workflows.model import (
    MAX_MESSAGE_LINES,
    Identifier,
    PositiveQty,
    ReceiveReturnInput,
    ReturnCondition,
    ReturnOutcome,
    ReturnRequestInput,
    ReturnView,
)
from workflows.order import order_workflow_id
from workflows.returns import return_workflow_id

routes = web.RouteTableDef()

RETURN_STATUSES = ("OPEN", "RECEIVED", "EXPIRED", "DONE")
DOCUMENTS = {"label": "return_label", "note": "return_note"}


class ReturnLineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_id: Identifier
    quantity: PositiveQty


class ReturnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[ReturnLineRequest] = Field(min_length=1, max_length=MAX_MESSAGE_LINES)
    reason_code: Identifier
    comment: str | None = Field(default=None, max_length=1000)
    location_id: Identifier | None = None


class ReceivedLineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_id: Identifier
    quantity: int = Field(strict=True, ge=0, le=1_000_000)
    condition: ReturnCondition = "new"


class ReceiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[ReceivedLineRequest] = Field(min_length=1, max_length=MAX_MESSAGE_LINES)


def _links(return_id: str) -> dict[str, str]:
    return {name: f"/v1/returns/{return_id}/{name}" for name in DOCUMENTS}


@routes.post("/v1/orders/{order_id}/returns")
async def request_return(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops")
    row = await visible_order(request, principal)
    asked = parse(ReturnRequest, await read_json(request))
    if asked.location_id is not None:
        await check_locations(request, {asked.location_id})
    handle = request.app[TEMPORAL].get_workflow_handle(order_workflow_id(row.order_id))
    try:
        created: ReturnView = await execute_update(
            request,
            handle,
            "request_return",
            ReturnRequestInput.model_validate(asked.model_dump()),
            result_type=ReturnView,
        )
    except Exception as err:
        raise workflow_error(err, "return_window_closed") from err
    body: dict[str, Any] = created.model_dump(mode="json")
    body["order_id"] = row.order_id
    body["documents"] = _links(created.return_id)
    return web.json_response(body, status=201)


async def _return_row(request: web.Request, principal: Principal) -> ReturnRow:
    return_id = request.match_info["return_id"]
    store = request.app[STORE]
    row = await store.returns.get(return_id) or await _from_order(request, return_id)
    visible = row is not None
    if row is not None and principal.role == "location":
        visible = row.location_id == principal.identity
    elif row is not None and principal.role == "webshop":
        order = await store.orders.get(row.order_id)
        visible = order is not None and order.sales_channel == principal.identity
    if not visible or row is None:
        raise ApiError(404, "return_not_found", f"no return {return_id}")
    return row


_RETURN_ID = re.compile(r"^(?P<order>.+)-RMA(?P<seq>[0-9]{1,6})$")


async def _from_order(request: web.Request, return_id: str) -> ReturnRow | None:
    """A return its own workflow has not written to the store yet (it does so first
    thing): as its order's projected view shows it, which the order writes before it
    answers the request (or, for a return to sender, before it moves on)."""
    found = _RETURN_ID.match(return_id)
    if found is None:
        return None
    stored = await request.app[STORE].orders.read_view(found["order"])
    if stored is None or stored.view is None:
        return None
    for ret in json.loads(stored.view).get("returns", []):
        if ret.get("return_id") != return_id or ret.get("type") == "CANCEL":
            continue
        view = ReturnView.model_validate(ret)
        order = stored.order
        return ReturnRow(
            return_id=return_id,
            order_id=order.order_id,
            type=view.type,
            status=view.status,
            lines=[line.model_dump() for line in view.lines],
            reason=view.reason,
            created_at=view.created_at or order.updated_at,
            sales_channel=order.sales_channel,
            location_id=view.location_id,
            reason_code=view.reason_code,
            workflow_id=return_workflow_id(order.order_id, int(found["seq"])),
            expires_at=view.expires_at,
            received=[r.model_dump(mode="json") for r in view.received],
            refund_amount=view.refund_amount,
            currency=order.currency,
            updated_at=order.updated_at,
        )
    return None


def _answer(row: ReturnRow, dispositions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = row.as_json()
    if row.type != "CANCEL":
        body["documents"] = _links(row.return_id)
    if dispositions is not None:
        body["dispositions"] = dispositions
    return body


@routes.get("/v1/returns")
async def list_returns(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops", "location")
    limit = query.integer(request, "limit", default=100, minimum=1, maximum=500)
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    status = query.optional_choice(request, "status", RETURN_STATUSES)
    location_id = query.identifier(request, "location_id")
    order_id = request.query.get("order_id")
    store = request.app[STORE]
    channel = principal.identity if principal.role == "webshop" else None
    if principal.role == "location":
        location_id = principal.identity
    if order_id is not None:
        if not 0 < len(order_id) <= 200 or not order_id.isprintable():
            raise ApiError(400, "invalid_query", "order_id: 1 to 200 printable characters")
        # the channel's own id names its order too (as in /v1/orders/{id})
        found = await store.orders.find(order_id, channel)
        order_id = found[0].order_id if len(found) == 1 else order_id
    rows, total = await store.returns.search(
        order_id=order_id,
        sales_channel=channel,
        location_id=location_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return web.json_response(
        {
            "returns": [_answer(r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.get("/v1/returns/{return_id}")
async def get_return(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops", "location")
    row = await _return_row(request, principal)
    dispositions = await request.app[STORE].returns.dispositions(row.return_id)
    return web.json_response(_answer(row, dispositions))


@routes.get("/v1/returns/{return_id}/{document}")
async def return_document(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops", "location")
    kind = DOCUMENTS.get(request.match_info["document"])
    if kind is None:
        raise ApiError(404, "document_not_found", "a return has a label and a note")
    row = await _return_row(request, principal)
    document_id = f"{row.return_id}-{kind}"
    found = await request.app[STORE].orders.document(document_id)
    if found is None:
        raise ApiError(404, "document_not_found", f"no document {document_id} (yet)")
    return pdf_response(document_id, found[2])


@routes.post("/v1/returns/{return_id}/receive")
async def receive_return(request: web.Request) -> web.Response:
    principal = require(request, "location", "ops")
    row = await _return_row(request, principal)
    received = parse(ReceiveRequest, await read_json(request))
    outcome = await receive(request, row, received)
    return web.json_response(text=outcome.model_dump_json())


async def visible_return(request: web.Request, principal: Principal) -> ReturnRow:
    """The return the path's {return_id} names, if `principal` may see it (the back
    office's look-up, api/ui)."""
    return await _return_row(request, principal)


async def receive(request: web.Request, row: ReturnRow, received: ReceiveRequest) -> ReturnOutcome:
    """A location's receipt of a return's parcel (POST /v1/returns/{id}/receive)."""
    if row.type == "CANCEL" or row.workflow_id is None:
        raise ApiError(409, "return_closed", f"return {row.return_id} is not awaiting a parcel")
    handle = request.app[TEMPORAL].get_workflow_handle(row.workflow_id)
    try:
        outcome: ReturnOutcome = await execute_update(
            request,
            handle,
            "receive",
            ReceiveReturnInput.model_validate(received.model_dump()),
            result_type=ReturnOutcome,
        )
    except Exception as err:
        raise workflow_error(err, "return_closed") from err
    return outcome
