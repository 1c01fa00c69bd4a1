"""The order lifecycle end to end: real HTTP, real Temporal dev server, both databases."""

from __future__ import annotations

from tests.integration.conftest import Stack, order_body, unique_sku


async def test_happy_path_to_delivered(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 10), ("WH-MUNICH", sku, 10)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))

    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    line = view["lines"][0]
    assert line["status"] == "RELEASED"
    assert line["location_id"] == "WH-BERLIN"  # nearest to the Berlin ship-to
    assert line["planned_ship_date"] is not None
    assert view["routing"][0]["candidates"][0]["location_id"] == "WH-BERLIN"
    assert {d["kind"] for d in view["documents"]} == {"delivery_note", "return_label"}
    assert [w["location_id"] for w in view["work_orders"]] == ["WH-BERLIN"]
    assert await stack.atp(sku) == {"WH-BERLIN": 8, "WH-MUNICH": 10}

    status, pdf = await stack.call("GET", view["documents"][0]["url"], key="ops")
    assert status == 200 and pdf.startswith(b"%PDF")

    key = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.fulfil(key, "WH-BERLIN", {"1": 2})
    view = await stack.wait_status(order_id, "DELIVERED")
    assert view["lines"][0]["status"] == "DELIVERED"
    assert view["shipments"][0]["quantity"] == 2
    assert view["shipments"][0]["carrier"] == "DHL"
    statuses = [e["type"] for e in view["events"] if e["type"].startswith("status_")]
    assert statuses == [
        "status_validating",
        "status_validated",
        "status_routing",
        "status_approved",
        "status_responded",
        "status_documented",
        "status_submitted",
        "status_in_fulfillment",
        "status_shipped",
        "status_delivered",
    ]
    # stock left the building: on hand down, nothing reserved any more
    assert await stack.atp(sku) == {"WH-BERLIN": 8, "WH-MUNICH": 10}
    stock = {(r.location_id, r.sku): r for r in await stack.store.inventory.stock([sku])}
    assert (stock[("WH-BERLIN", sku)].on_hand, stock[("WH-BERLIN", sku)].reserved) == (8, 0)

    # the projection in the store follows the workflow
    row = await stack.store.orders.get(order_id)
    assert row is not None and row.status == "DELIVERED"
    status, listing = await stack.call("GET", "/v1/orders?status=DELIVERED", key="ops")
    assert status == 200 and order_id in [o["order_id"] for o in listing["orders"]]


async def test_repeated_post_is_idempotent_and_a_different_body_conflicts(stack: Stack) -> None:
    body = order_body()
    order_id = await stack.create_order(body)
    status, again = await stack.call("POST", "/v1/orders", key="web", json=body)
    assert status == 200
    assert again["order_id"] == order_id and again["workflow_id"] == f"order-{order_id}"
    changed = order_body(order_id=body["order_id"], quantity=3)
    status, err = await stack.call("POST", "/v1/orders", key="web", json=changed)
    assert status == 409 and err["error"]["code"] == "order_conflict"


async def test_b2b_order_is_approved_then_fulfilled(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(channel="b2b", sku=sku, quantity=1))
    # the status is written a moment before the first rank's approvals are requested
    view = await stack.wait_for(
        order_id,
        lambda v: (
            v["status"] == "AWAITING_APPROVAL"
            and any(a["status"] == "pending" for a in v["approvals"])
        ),
        "approval requested",
    )
    assert [(a["reason"], a["status"]) for a in view["approvals"]] == [("credit-check", "pending")]
    status, pending = await stack.call("GET", "/v1/approvals?status=pending", key="alice")
    assert status == 200 and order_id in [p["order_id"] for p in pending["approvals"]]

    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="alice",
        json={"reason": "credit-check", "decision": "approve", "comment": "limit ok"},
    )
    assert status == 200, result
    assert result["approvals"][0]["status"] == "approved"
    assert result["approvals"][0]["decided_by"] == "alice"

    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["approvals"][0]["comment"] == "limit ok"
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.fulfil(key, "WH-BERLIN", {"1": 1})
    await stack.wait_status(order_id, "DELIVERED")


async def test_b2b_order_declined_gives_the_stock_back(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 3)])
    order_id = await stack.create_order(order_body(channel="b2b", sku=sku, quantity=3))
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 0}

    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="alice",
        json={"reason": "credit-check", "decision": "decline", "comment": "over limit"},
    )
    assert status == 200, result
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["approvals"][0]["status"] == "declined"
    assert view["lines"][0]["status"] == "CANCELLED"
    assert "status_declined" in [e["type"] for e in view["events"]]
    assert view["returns"][0]["type"] == "CANCEL"
    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 3}


async def test_short_pick_is_rerouted_to_a_second_location(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    first = await stack.current_shipment(order_id, "WH-BERLIN")

    # Berlin finds nothing: both units are backordered and routed again
    status, answer = await stack.call(
        "POST",
        f"/v1/shipments/{first}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
    )
    assert status == 200, answer
    second = await stack.current_shipment(order_id, "WH-MUNICH")
    assert second != first
    await stack.fulfil(second, "WH-MUNICH", {"1": 2})
    view = await stack.wait_status(order_id, "DELIVERED")

    releases = view["releases"]
    assert len({r["release_key"] for r in releases}) == 2
    assert [r["location_id"] for r in releases if r["status_quantity"] == 1] == ["WH-MUNICH"]
    shipments = {s["shipment_key"]: s for s in view["shipments"]}
    assert shipments[first]["quantity"] == 0
    assert shipments[second]["quantity"] == 2
    assert view["lines"][0]["location_id"] == "WH-MUNICH"
    assert "shipment_picked" in [e["type"] for e in view["events"]]

    # the store's release and shipment tables say the same
    rows = await stack.store.fulfillment.releases(order_id)
    assert len({r.release_key for r in rows}) == 2
    assert [r.location_id for r in rows if r.status_quantity == 1] == ["WH-MUNICH"]
    stored = {s.shipment_key: s for s in await stack.store.fulfillment.shipments(order_id)}
    assert stored[first].lines[0].quantity == 0
    assert stored[second].lines[0].quantity == 2
    # the units Berlin did not find are gone from its on-hand; Munich shipped two
    assert await stack.atp(sku) == {"WH-BERLIN": 0, "WH-MUNICH": 3}


async def test_cancel_before_ship_releases_the_reservation(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 4)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=4))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    assert await stack.atp(sku) == {"WH-BERLIN": 0}

    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        key="web",
        json={"reason": "customer changed their mind"},
    )
    assert status == 200, result
    assert result["status"] == "CANCELLED"
    view = await stack.order(order_id)
    assert view["lines"][0]["status"] == "CANCELLED"
    assert view["returns"][0]["type"] == "CANCEL"
    assert await stack.atp(sku) == {"WH-BERLIN": 4}
    # the location's work order is withdrawn and a late pick report is refused
    status, work = await stack.call(
        "GET", "/v1/locations/WH-BERLIN/work-orders?status=OPEN,PICKED,SHIPPED", key="WH-BERLIN"
    )
    assert key not in [w["shipment_key"] for w in work["work_orders"]]
    status, err = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 4}]},
    )
    assert status == 409, err

    # a repeated cancel is answered like the first one and changes nothing
    status, again = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "again"}
    )
    assert (status, again["status"]) == (200, "CANCELLED")
    assert len((await stack.order(order_id))["returns"]) == 1


async def test_shipped_lines_cannot_be_cancelled(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for action, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 1}]}),
        ("ship", {"carrier": "UPS", "tracking_number": "1Z"}),
    ):
        status, _ = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200
    await stack.wait_status(order_id, "SHIPPED")
    status, err = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "too late"}
    )
    assert status == 409 and err["error"]["code"] == "not_cancellable"


async def test_failed_payment_rule_holds_the_order_until_resumed(stack: Stack) -> None:
    body = order_body(quantity=1)
    body["payment"]["authorized"] = False
    order_id = await stack.create_order(body)
    view = await stack.wait_status(order_id, "ON_HOLD")
    assert view["hold_reasons"] == ["payment is not authorized"]

    fixed = {**body["payment"], "authorized": True}
    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/resume",
        key="ops",
        json={"payment": fixed, "comment": "re-authorized"},
    )
    assert status == 200, result
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["hold_reasons"] == []
