"""Reading one order: the order view from the store's projection, or live from the workflow.

The order workflow projects its whole view into the store at every change (local
activity `project_order`), so GET /v1/orders/{id} answers from the store: it needs no
worker, does not wake the workflow, and still answers after the workflow history is gone
(retention, termination). Its `events` are the complete audit trail from order_events:
everything the workflow recorded (including events it no longer carries after
continue-as-new) and what other components wrote there (e.g. the reservation
reconciler).

`?source=workflow` (ops and admin) asks the workflow's `state` query instead, for
engineers; bounded by a short RPC timeout, it answers 503 with a code saying why when
the workflow cannot answer.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web
from temporalio.client import RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCStatusCode

from api.context import STORE, TEMPORAL
from api.errors import ApiError, error_response
from store import Principal
from store.orders import OrderRow, StoredView
from workflows.model import Event, LineStatus, LineView, OrderStatus, OrderView
from workflows.order import order_workflow_id

# how long the live query may take before the API says the workflow cannot answer
QUERY_TIMEOUT = timedelta(seconds=5)
RETRY_AFTER_SECONDS = 5
SOURCES = ("store", "workflow")


async def order_view_response(
    request: web.Request, principal: Principal, row: OrderRow
) -> web.Response:
    """The answer to GET /v1/orders/{id} for an order the caller may see."""
    source = request.query.get("source", "store")
    if source not in SOURCES:
        raise ApiError(400, "invalid_query", f"source is one of {', '.join(SOURCES)}")
    if source == "workflow":
        if principal.role not in ("ops", "admin"):
            raise ApiError(403, "forbidden", "only ops and admin read the live workflow state")
        return await _from_workflow(request, row)
    stored = await request.app[STORE].orders.read_view(row.order_id)
    if stored is None:
        raise ApiError(404, "order_not_found", f"no order {row.order_id}")
    return web.json_response(body=render(stored).encode(), content_type="application/json")


def render(stored: StoredView) -> str:
    """The order view (OrderView's JSON shape) with the store's full event list."""
    if stored.view is not None:
        view: dict[str, Any] = json.loads(stored.view)
    else:
        view = _created_view(stored).model_dump(mode="json")
    view["events"] = [
        Event(seq=seq, at=at, type=kind, detail=detail).model_dump(mode="json")
        for seq, at, kind, detail in stored.events
    ]
    return json.dumps(view, separators=(",", ":"))


def _created_view(stored: StoredView) -> OrderView:
    """An order whose workflow has not projected yet (just created): the row and its
    lines as the API wrote them."""
    row = stored.order
    return OrderView(
        order_id=row.order_id,
        sales_channel=row.sales_channel,
        customer_id=row.customer_id,
        status=OrderStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        total=row.total,
        currency=row.currency,
        lines=[
            LineView(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                status=LineStatus(line.status),
                location_id=line.location_id,
                planned_ship_date=line.planned_ship_date,
            )
            for line in stored.lines
        ],
    )


async def _from_workflow(request: web.Request, row: OrderRow) -> web.Response:
    handle = request.app[TEMPORAL].get_workflow_handle(order_workflow_id(row.order_id))
    try:
        view = await handle.query("state", result_type=OrderView, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404,
                "workflow_not_found",
                f"order {row.order_id} has no workflow (not started yet, or past "
                f"retention); read it without source=workflow: {err.message}",
            ) from err
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return _unavailable(
                "no_worker", f"no worker answered the state query in {QUERY_TIMEOUT}"
            )
        return _unavailable("temporal_unavailable", f"Temporal did not answer: {err.message}")
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        return _unavailable("query_failed", f"the workflow could not answer: {err}")
    return web.json_response(text=view.model_dump_json())


def _unavailable(code: str, message: str) -> web.Response:
    response = error_response(503, code, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
