"""Reading one order: the order view from the store's projection, or live from the workflow.

The order workflow projects its whole view into the store at every change (local
activity `project_order`), so GET /v1/orders/{id} answers from the store: it needs no
worker, does not wake the workflow, and still answers after the workflow history is gone
(retention, termination). Its `events` are the complete audit trail from order_events:
everything the workflow recorded (including events it no longer carries after
continue-as-new) and what other components wrote there (e.g. the reservation
reconciler).

`?source=workflow` (ops and admin) asks the workflow's `state` query instead, for
engineers; bounded by a short RPC timeout, it answers 503 `no_worker` (no worker polls,
or none answered in time) or `temporal_unavailable` when the workflow cannot answer,
404 `workflow_not_found` when its history is gone.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from aiohttp import web
from temporalio.client import RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCStatusCode

from api.commands import require_worker
from api.context import STORE, TEMPORAL
from api.dependencies import NO_WORKER, DependencyUnavailable
from api.errors import ApiError, workflow_error
from store import Principal
from store.orders import OrderRow, StoredView
from workflows.model import Event, LineStatus, LineView, OrderStatus, OrderView
from workflows.order import order_workflow_id

# how long the live query may take before the API says the workflow cannot answer
QUERY_TIMEOUT = timedelta(seconds=5)
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
    view["channel_order_id"] = stored.order.channel_order_id
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
    # no worker polls the task queue: 503 no_worker at once, without waiting for a timeout
    await require_worker(request)
    handle = request.app[TEMPORAL].get_workflow_handle(order_workflow_id(row.order_id))
    try:
        async with asyncio.timeout(QUERY_TIMEOUT.total_seconds() + 1):
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
            raise _no_answer() from err
        raise workflow_error(err) from err  # Temporal unreachable: 503 temporal_unavailable
    except TimeoutError as err:
        raise _no_answer() from err
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise ApiError(409, "query_failed", f"the workflow could not answer: {err}") from err
    live = view.model_dump(mode="json")
    live["channel_order_id"] = row.channel_order_id
    return web.json_response(live)


def _no_answer() -> DependencyUnavailable:
    return DependencyUnavailable(
        NO_WORKER,
        f"no worker answered the state query within {QUERY_TIMEOUT.total_seconds():g} s",
    )
