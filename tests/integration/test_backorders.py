"""Backordered units wait for stock on a durable timer, then follow the channel's policy;
orders no location can take are NOT_ANNOUNCED."""

from __future__ import annotations

from tests.integration.conftest import Stack, order_body, unique_sku


async def test_backorder_waits_for_stock_then_ships(stack: Stack) -> None:
    channel = await stack.make_channel(
        "ch", backorder_retry_seconds=0.5, backorder_max_attempts=1000
    )
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    first = await stack.current_shipment(order_id, "WH-BERLIN")
    status, _ = await stack.call(
        "POST",
        f"/v1/shipments/{first}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 1}]},
    )
    assert status == 200
    # one unit ships from Berlin; the other waits: no location has it
    view = await stack.wait_for(
        order_id,
        lambda v: (
            v["lines"][0]["status"] == "BACKORDERED"
            and "backorder_waiting" in [e["type"] for e in v["events"]]
        ),
        "backorder waiting",
    )
    assert view["routing"][-1]["location_id"] is None
    # stock arrives in Munich; the next timed retry routes the unit there
    await stack.set_stock([("WH-MUNICH", sku, 1)])
    second = await stack.current_shipment(order_id, "WH-MUNICH")
    await stack.fulfil(second, "WH-MUNICH", {"1": 1})
    for action, body in (("ship", {"carrier": "DHL", "tracking_number": "A"}), ("deliver", {})):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{first}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, answer
    view = await stack.wait_status(order_id, "DELIVERED")
    assert view["lines"][0]["shipped_quantity"] == 2
    assert sorted(s["quantity"] for s in view["shipments"]) == [1, 1]


async def test_backorder_cancelled_after_the_retry_limit(stack: Stack) -> None:
    channel = await stack.make_channel("ch", backorder_retry_seconds=0.2, backorder_max_attempts=2)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, _ = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
    )
    assert status == 200
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["lines"][0]["cancelled_quantity"] == 1
    assert "backorder_cancelled" in [e["type"] for e in view["events"]]


async def test_unroutable_order_is_not_announced_and_resumes(stack: Stack) -> None:
    sku = unique_sku()
    order_id = await stack.create_order(order_body(sku=sku, quantity=1))
    view = await stack.wait_status(order_id, "NOT_ANNOUNCED")
    assert view["hold_reasons"] and sku in view["hold_reasons"][0]
    await stack.set_stock([("WH-MUNICH", sku, 1)])
    status, answer = await stack.call(
        "POST", f"/v1/orders/{order_id}/resume", key="ops", json={"comment": "stock arrived"}
    )
    assert status == 200, answer
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "WH-MUNICH"


async def test_unroutable_order_is_cancelled_when_the_channel_says_so(stack: Stack) -> None:
    channel = await stack.make_channel("ch", auto_cancel_not_announced=True)
    order_id = await stack.create_order(order_body(channel=channel, sku=unique_sku()), key="ops")
    view = await stack.wait_status(order_id, "CANCELLED")
    assert "status_not_announced" in [e["type"] for e in view["events"]]


async def test_backordered_lines_are_rerouted_each_on_its_own(stack: Stack) -> None:
    channel = await stack.make_channel("ch", backorder_retry_seconds=600, backorder_max_attempts=5)
    sku_a, sku_b = unique_sku(), unique_sku()
    await stack.set_stock(
        [("WH-BERLIN", sku_a, 1), ("WH-BERLIN", sku_b, 1), ("WH-MUNICH", sku_a, 1)]
    )
    body = order_body(channel=channel, sku=sku_a, quantity=1)
    body["lines"].append({"line_id": "2", "sku": sku_b, "quantity": 1, "unit_price": "19.99"})
    body["payment"]["amount"] = "39.98"
    order_id = await stack.create_order(body, key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, _ = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={
            "lines": [
                {"line_id": "1", "picked_quantity": 0},
                {"line_id": "2", "picked_quantity": 0},
            ]
        },
    )
    assert status == 200
    # line 1 finds Munich at once; line 2 has no stock anywhere and waits
    view = await stack.wait_for(
        order_id,
        lambda v: any(s["location_id"] == "WH-MUNICH" for s in v["shipments"]),
        "line 1 re-released to Munich",
    )
    lines = {ln["line_id"]: ln for ln in view["lines"]}
    assert lines["1"]["location_id"] == "WH-MUNICH"
    assert lines["2"]["status"] == "BACKORDERED"
    # operations can place the waiting unit by hand
    await stack.set_stock([("WH-LONDON", sku_b, 1)])
    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "2", "location_id": "WH-LONDON"}]},
    )
    assert status == 200, result
    await stack.current_shipment(order_id, "WH-LONDON")
