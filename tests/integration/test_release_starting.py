"""A location's report on a release the order has written but whose workflow is not
running yet: the order writes each release with its work orders (submit_work_orders)
while it starts the release's workflow, and a slow start can leave the shipment in the
store (the work-order list, the order view) a moment before Temporal has the workflow.

The report waits for the start and is taken; a release whose workflow does not come within
the wait is answered 503 `release_starting` with a Retry-After (before: 409 `not_pending`,
"the workflow has completed", which tells the location its report can never count)."""

from __future__ import annotations

import asyncio
import uuid

from store.database import utcnow
from tests.integration.conftest import Stack
from workflows.fulfillment import FulfillmentWorkflow, fulfillment_workflow_id
from workflows.model import FulfillmentInput, FulfillmentLine
from workflows.order_state import release_key, shipment_key, work_order_id

LOCATION = "WH-BERLIN"


async def pick(stack: Stack, key: str) -> tuple[int, dict[str, str], object]:
    resp = await stack.http.request(
        "POST",
        f"/v1/shipments/{key}/pick",
        json={"lines": [{"line_id": "1", "picked_quantity": 1}]},
        headers={"Authorization": f"Bearer {stack.keys[LOCATION]}"},
    )
    return resp.status, dict(resp.headers), await resp.json()


async def test_a_report_waits_for_its_release_to_start(stack: Stack) -> None:
    order_id = f"T-{uuid.uuid4().hex[:12]}@web"
    key = shipment_key(order_id, 1)
    workflow_id = fulfillment_workflow_id(order_id, 1)
    # what submit_work_orders writes before the order starts the release's workflow
    await stack.store.fulfillment.release(
        order_id=order_id,
        location_id=LOCATION,
        release_key=release_key(order_id, 1),
        shipment_key=key,
        workflow_id=workflow_id,
        work_order_id=work_order_id(order_id, 1),
        lines=[("1", 1)],
        at=utcnow(),
    )

    # no workflow comes: the location is told to send the report again
    status, headers, body = await pick(stack, key)
    assert status == 503, body
    assert body["error"]["code"] == "release_starting", body  # type: ignore[index]
    assert int(headers["Retry-After"]) > 0

    # the workflow starts while the report waits: the report is taken
    report = asyncio.create_task(pick(stack, key))
    await stack.client.start_workflow(
        FulfillmentWorkflow.run,
        FulfillmentInput(
            order_id=order_id,
            location_id=LOCATION,
            release_key=release_key(order_id, 1),
            shipment_key=key,
            work_order_id=work_order_id(order_id, 1),
            lines=[FulfillmentLine(line_id="1", sku="SKU-X", quantity=1, reservation_id="none")],
            order_took_release=True,
        ),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    status, _, body = await report
    assert status == 200, body
    assert body["status"] == "PICKED", body  # type: ignore[index]
    record = await stack.store.fulfillment.shipment(key)
    assert record is not None
    assert [(line.line_id, line.picked_quantity) for line in record.lines] == [("1", 1)]
