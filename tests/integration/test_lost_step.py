"""A release's step is a local activity in the workflow task that takes the location's
report (patch oms-13-local-steps): the store is written before that task completes. A
worker that dies in between leaves the step in the store while the release has not taken
the report; the location's next report of the step must go on from what the store holds."""

from __future__ import annotations

from activities.fulfillment import FulfillmentActivities
from tests.integration.conftest import Stack, order_body, unique_sku
from workflows.model import FulfillmentInput, RecordPickInput


async def test_the_first_pick_the_store_holds_counts(stack: Stack) -> None:
    """The lost task had written "1 of 2 found"; the location then reports both found.
    The release, the order and the store go on with the first pick: one unit ships, the
    other is backordered (before, the release shipped 2 while the store had picked 1)."""
    channel = await stack.make_channel("ch", backorder_retry_seconds=600, backorder_max_attempts=5)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    record = await stack.store.fulfillment.shipment(key)
    assert record is not None
    history = await stack.client.get_workflow_handle(record.workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [release] = await stack.client.data_converter.decode(
        list(started.input.payloads), [FulfillmentInput]
    )
    # what the lost task's local activity did before the worker died: the store's part
    await FulfillmentActivities(stack.store).record_pick(
        RecordPickInput(fulfillment=release, picked={"1": 1})
    )

    await stack.pick(key, "WH-BERLIN", {"1": 2})
    view = await stack.wait_for(
        order_id,
        lambda v: "backorder_waiting" in [e["type"] for e in v["events"]],
        "the unit not found waits for stock",
    )
    assert view["lines"][0]["status"] == "BACKORDERED"
    for action, body in (("ship", {"carrier": "DHL", "tracking_number": "L-1"}), ("deliver", {})):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, (action, answer)
    view = await stack.wait_for(
        order_id, lambda v: v["lines"][0]["shipped_quantity"] > 0, "the unit found shipped"
    )
    assert view["lines"][0]["shipped_quantity"] == 1
    shipment = await stack.store.fulfillment.shipment(key)
    assert shipment is not None
    assert [(x.quantity, x.picked_quantity) for x in shipment.lines] == [(1, 1)]
