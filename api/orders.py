"""Order routes: start, read, list, cancel, resume, approve."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from temporalio.client import RPCError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCStatusCode

from api import query
from api.auth import require
from api.commands import execute_update
from api.configuration import check_locations
from api.context import SETTINGS, STORE, TEMPORAL
from api.errors import ApiError, parse, read_json, workflow_error
from api.messages import AssignmentsRequest, CancelRequest, OrderRequest
from api.order_views import SOURCES, order_view_response
from oms import ids
from store import Principal
from store.orders import OrderRow
from workflows import search
from workflows.model import (
    ApprovalDecisionInput,
    ApprovalUpdateResult,
    CancelInput,
    OrderCommandResult,
    OrderInput,
    OrderStatus,
    ResumeInput,
)
from workflows.order import OrderWorkflow, order_workflow_id
from workflows.order_state import OrderWorkflowInput

routes = web.RouteTableDef()

MAX_LIST_LIMIT = 500
ORDER_STATUSES = tuple(s.value for s in OrderStatus)
APPROVAL_STATUSES = ("pending",)  # the only list kept


def request_hash(order: OrderInput) -> str:
    canonical = json.dumps(order.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _order_row(request: web.Request, principal: Principal) -> OrderRow:
    """The order the path names, if the caller may see it: by its OMS id
    (`{channel_order_id}@{channel}`), or by the id its channel gave it (a web shop's key
    looks in its own channel; other callers anywhere, and are asked for the OMS id when
    that id names orders of several channels)."""
    reference = request.match_info["order_id"]
    store = request.app[STORE]
    channel = principal.identity if principal.role == "webshop" else None
    found = await store.orders.find(reference, channel)
    candidates = [row for row in found if await _visible(request, principal, row)]
    exact = [row for row in candidates if row.order_id == reference]
    if exact:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ApiError(404, "order_not_found", f"no order {reference}")
    raise ApiError(
        409,
        "ambiguous_order_id",
        f"orders of several channels have the id {reference}: name one by its order_id "
        f"({', '.join(row.order_id for row in candidates)})",
    )


async def _visible(request: web.Request, principal: Principal, row: OrderRow) -> bool:
    if principal.role == "webshop":
        return row.sales_channel == principal.identity
    if principal.role == "approver":
        # approvers see the orders they are asked to approve
        return await request.app[STORE].orders.is_approver(row.order_id, principal.identity)
    return True


def _handle(request: web.Request, order_id: str) -> WorkflowHandle[Any, Any]:
    return request.app[TEMPORAL].get_workflow_handle(order_workflow_id(order_id))


async def _command(
    request: web.Request, row: OrderRow, update: str, payload: BaseModel, closed_code: str
) -> web.Response:
    """Run an order update (the caller learns at once whether it counted) and answer;
    503 when no worker polls, 202 with a command id when the outcome is not known in time."""
    try:
        result = await execute_update(
            request, _handle(request, row.order_id), update, payload, result_type=OrderCommandResult
        )
    except Exception as err:
        raise workflow_error(err, closed_code) from err
    return web.json_response(text=result.model_dump_json())


@routes.post("/v1/orders")
async def create_order(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops")
    order = parse(OrderRequest, await read_json(request))
    store = request.app[STORE]
    if principal.role == "webshop" and order.sales_channel != principal.identity:
        raise ApiError(403, "forbidden", f"this key orders for channel {principal.identity}")
    digest = request_hash(order)
    # order ids are unique per channel: the OMS's id names the channel, and an order the
    # channel placed before ids were scoped keeps its plain id (both reads at once)
    channel, earlier = await asyncio.gather(
        store.config.channel(order.sales_channel),
        store.orders.find(order.order_id, order.sales_channel),
    )
    if channel is None:
        raise ApiError(
            422,
            "validation_error",
            "unknown sales channel",
            [
                {
                    "field": "sales_channel",
                    "message": "unknown sales channel",
                    "type": "unknown_sales_channel",
                }
            ],
        )
    if earlier:
        order_id = earlier[0].order_id
    else:
        order_id = ids.order_key(order.order_id, order.sales_channel)
    workflow_id = order_workflow_id(order_id)
    created, row = await store.orders.create(
        order_id=order_id,
        channel_order_id=order.order_id,
        sales_channel=order.sales_channel,
        customer_id=order.customer.id,
        total=order.total,
        currency=order.payment.currency,
        request_hash=digest,
        workflow_id=workflow_id,
        lines=[(ln.line_id, ln.sku, ln.quantity, ln.unit_price) for ln in order.lines],
    )
    if not created and row.request_hash != digest:
        raise ApiError(
            409, "order_conflict", f"order {order.order_id} exists with a different body"
        )
    client = request.app[TEMPORAL]
    if not created and row.status != OrderStatus.CREATED.value:
        # the order is under way (or done, maybe purged from Temporal): never start again
        return web.json_response(_created(row, None, row.status), status=200)
    try:
        # The row is written first: if this process dies before the start, the client's
        # retry of the same body finds the row and starts the workflow here.
        handle = await client.start_workflow(
            OrderWorkflow.run,
            OrderWorkflowInput.model_validate({**order.model_dump(), "order_id": order_id}),
            id=workflow_id,
            task_queue=request.app[SETTINGS].task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.ORDER_STATUS, OrderStatus.CREATED.value),
                    SearchAttributePair(search.SALES_CHANNEL, order.sales_channel),
                    SearchAttributePair(search.CUSTOMER_ID, order.customer.id),
                    SearchAttributePair(search.ORDER_TOTAL, float(order.total)),
                ]
            ),
            static_summary=(
                f"{order.sales_channel} order {order.order_id} for "
                f"{order.customer.id}: {len(order.lines)} lines, "
                f"{order.total} {order.payment.currency}"
            ),
        )
        run_id = handle.result_run_id or handle.first_execution_run_id
    except WorkflowAlreadyStartedError as err:
        run_id = err.run_id
    status = row.status if not created else OrderStatus.CREATED.value
    return web.json_response(_created(row, run_id, status), status=201 if created else 200)


def _created(row: OrderRow, run_id: str | None, status: str) -> dict[str, Any]:
    return {
        "order_id": row.order_id,
        "channel_order_id": row.channel_order_id,
        "sales_channel": row.sales_channel,
        "workflow_id": row.workflow_id,
        "run_id": run_id,
        "status": status,
    }


@routes.get("/v1/orders")
async def list_orders(request: web.Request) -> web.Response:
    principal = require(request, "ops", "webshop")
    limit = query.integer(request, "limit", default=50, minimum=1, maximum=MAX_LIST_LIMIT)
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    status = query.optional_choice(request, "status", ORDER_STATUSES)
    channel = query.identifier(request, "sales_channel")
    customer_id = query.identifier(request, "customer_id")
    if principal.role == "webshop":
        channel = principal.identity
    rows, total = await request.app[STORE].orders.search(
        status=status,
        sales_channel=channel,
        customer_id=customer_id,
        limit=limit,
        offset=offset,
    )
    return web.json_response(
        {
            "orders": [
                {
                    "order_id": r.order_id,
                    "channel_order_id": r.channel_order_id,
                    "sales_channel": r.sales_channel,
                    "customer_id": r.customer_id,
                    "status": r.status,
                    "total": str(r.total),
                    "currency": r.currency,
                    "created_at": r.created_at.isoformat(),
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in rows
            ],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.get("/v1/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops", "approver")
    query.choice(request, "source", SOURCES, "store")  # before the look-up: 400, not 404
    row = await _order_row(request, principal)
    # from the store's projection (no worker needed); ?source=workflow: the live query
    return await order_view_response(request, principal, row)


@routes.post("/v1/orders/{order_id}/cancel")
async def cancel_order(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops")
    row = await _order_row(request, principal)
    body = await read_json(request) if request.can_read_body else {}
    cancel = parse(CancelRequest, body)
    try:
        return await _command(request, row, "cancel", cancel, "not_cancellable")
    except ApiError as err:
        if err.code not in ("not_cancellable", "order_closed"):
            raise
        # a cancel repeated after the order was cancelled is answered like the first one
        if await _cancelled_already(request, row.order_id, cancel):
            return web.json_response({"status": OrderStatus.CANCELLED.value})
        raise


async def _cancelled_already(request: web.Request, order_id: str, cancel: CancelInput) -> bool:
    store = request.app[STORE]
    fresh = await store.orders.get(order_id)
    if fresh is None:
        return False
    if fresh.status == OrderStatus.CANCELLED.value:
        return True
    if cancel.line_ids is None:
        return False
    statuses = {line.line_id: line.status for line in await store.orders.lines(order_id)}
    return all(statuses.get(lid) == "CANCELLED" for lid in cancel.line_ids)


@routes.post("/v1/orders/{order_id}/resume")
async def resume_order(request: web.Request) -> web.Response:
    principal = require(request, "ops")
    row = await _order_row(request, principal)
    body = await read_json(request) if request.can_read_body else {}
    return await _command(request, row, "resume_order", parse(ResumeInput, body), "not_resumable")


@routes.post("/v1/orders/{order_id}/assignments")
async def assign_locations(request: web.Request) -> web.Response:
    """Operations choose locations for an order waiting in CHECK_ANNOUNCED/NOT_ANNOUNCED."""
    principal = require(request, "ops")
    row = await _order_row(request, principal)
    assignments = parse(AssignmentsRequest, await read_json(request))
    await check_locations(request, {a.location_id for a in assignments.assignments})
    return await _command(request, row, "assign_locations", assignments, "not_assignable")


@routes.post("/v1/orders/{order_id}/approvals")
async def decide_approval(request: web.Request) -> web.Response:
    principal = require(request, "approver")
    row = await _order_row(request, principal)
    return await decide(request, principal, row, await read_json(request))


async def decide(
    request: web.Request, principal: Principal, row: OrderRow, body: Any
) -> web.Response:
    """An approver's decision (the body of POST /v1/orders/{id}/approvals) on `row`."""
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "body must be an object")
    if "decided_by" in body:
        raise ApiError(
            422,
            "validation_error",
            "decided_by is not a field of a decision (the caller is recorded)",
            [
                {
                    "field": "decided_by",
                    "message": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
            ],
        )
    if principal.role == "approver":
        body["approver"] = principal.identity  # approvers act as themselves only
    else:
        body.setdefault("approver", principal.identity)
    decision = parse(ApprovalDecisionInput, body)
    if principal.role != "approver" and decision.approver != principal.identity:
        # an admin deciding for an approver: the audit trail names both
        decision = decision.model_copy(
            update={"decided_by": acting_for(principal.name, decision.approver)}
        )
    try:
        # an update, not a signal: the approver learns at once whether it counted
        result = await execute_update(
            request,
            _handle(request, row.order_id),
            "decide_approval",
            decision,
            result_type=ApprovalUpdateResult,
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # the order has closed: the same decision repeated is still a success
            repeated = await _recorded_decision(request, row, decision)
            if repeated is not None:
                return repeated
        raise workflow_error(err, "not_pending") from err
    except Exception as err:
        raise workflow_error(err, "not_pending") from err
    return web.json_response(text=result.model_dump_json())


DECIDED_BY_LENGTH = 100  # approvals.decided_by in the store


def acting_for(caller: str, approver: str) -> str:
    """`<caller> for <approver>`, cut to fit the store's column: the caller's name first,
    then (for the longest approver names) the approver's, so both stay named."""
    tail = f" for {approver}"
    keep = max(DECIDED_BY_LENGTH - len(tail), 20)
    return (caller[:keep] + tail)[:DECIDED_BY_LENGTH]


async def _recorded_decision(
    request: web.Request, row: OrderRow, decision: ApprovalDecisionInput
) -> web.Response | None:
    approvals = await request.app[STORE].orders.approvals(row.order_id)
    wanted = "approved" if decision.decision == "approve" else "declined"
    if not any(
        a["reason"] == decision.reason
        and a["status"] == wanted
        and a["decided_by"] == decision.recorded_as()
        for a in approvals
    ):
        return None
    fresh = await request.app[STORE].orders.get(row.order_id)
    return web.json_response(
        {"approvals": approvals, "status": fresh.status if fresh else row.status}
    )


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    principal = require(request, "approver", "ops")
    query.choice(request, "status", APPROVAL_STATUSES, "pending")
    approver = principal.identity if principal.role == "approver" else None
    items = await request.app[STORE].orders.pending_approvals(approver)
    return web.json_response({"approvals": items})


# -- for the back office (api/ui): the same look-ups and commands as the routes above


async def visible_order(request: web.Request, principal: Principal) -> OrderRow:
    """The order the path's {order_id} names, if `principal` may see it (404/409 otherwise)."""
    return await _order_row(request, principal)


async def order_command(
    request: web.Request, row: OrderRow, update: str, payload: BaseModel, closed_code: str
) -> web.Response:
    """An order update (resume_order, assign_locations, cancel) as the routes send it."""
    return await _command(request, row, update, payload, closed_code)


async def cancelled_already(request: web.Request, order_id: str, cancel: CancelInput) -> bool:
    """Whether a cancel refused as not cancellable had in fact been done before."""
    return await _cancelled_already(request, order_id, cancel)
