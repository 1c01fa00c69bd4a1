"""Shipment tracking (issue 10, point 4): events arriving out of order and repeated give
one timeline ordered by when they happened; each new event reaches the channel's
callback once, signed; a DELIVERED event delivers the shipment."""

from __future__ import annotations

import json
from typing import Any

from api.tracking import MAX_SHIPMENT_EVENTS
from oms import webhooks
from tests.integration.conftest import Callback, Stack, order_body, unique_sku
from tests.integration.gates import eventually
from tests.integration.test_returns import shop

EVENTS = [
    {"event_id": "e2", "status": "OUT_FOR_DELIVERY", "at": "2026-11-20T07:00:00+01:00"},
    {"event_id": "e1", "status": "IN_TRANSIT", "at": "2026-11-19T18:30:00Z", "place": "Kassel"},
    {"event_id": "e3", "status": "DELIVERY_FAILED", "at": "2026-11-20T11:00:00Z"},
]


async def test_tracking_events_make_one_ordered_timeline_and_reach_the_channel(
    stack: Stack, callback: Callback
) -> None:
    channel, secret = await shop(stack, callback)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for action, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 1}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "JD0001"}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, answer
    await stack.wait_status(order_id, "SHIPPED")

    path = f"/v1/shipments/{key}/tracking"
    status, answer = await stack.call("POST", path, key="WH-BERLIN", json={"events": EVENTS})
    assert status == 200, answer
    assert (answer["recorded"], answer["repeated"]) == (3, 0)
    # the carrier sends e1 again, with the delivery: the repeat counts once
    status, answer = await stack.call(
        "POST",
        path,
        key="WH-BERLIN",
        json={
            "events": [
                EVENTS[1],
                {"event_id": "e4", "status": "DELIVERED", "at": "2026-11-21T10:15:00Z"},
            ]
        },
    )
    assert status == 200, answer
    assert (answer["recorded"], answer["repeated"]) == (1, 1)
    assert [e["event_id"] for e in answer["timeline"]] == ["e1", "e2", "e3", "e4"]
    assert answer["timeline"][1]["at"].startswith("2026-11-20T06:00:00")  # in UTC

    # the DELIVERED event delivered the shipment, and so the order
    view = await stack.wait_status(order_id, "DELIVERED")
    kinds = [e["type"] for e in view["events"] if e["type"].startswith("tracking_")]
    assert sorted(kinds) == [
        "tracking_delivered",
        "tracking_delivery_failed",
        "tracking_in_transit",
        "tracking_out_for_delivery",
    ]

    # the web shop reads the timeline of its order's shipment; another channel cannot
    status, shown = await stack.call("GET", path, key=channel)
    assert status == 200 and [e["status"] for e in shown["timeline"]] == [
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERY_FAILED",
        "DELIVERED",
    ]
    assert shown["tracking_number"] == "JD0001"
    status, hidden = await stack.call("GET", path, key="web")
    assert status == 404, hidden

    # one signed status update per event
    async def updates() -> list[dict[str, Any]] | None:
        found = []
        for header, raw in callback.received:
            message = json.loads(raw)
            if message.get("type") == "tracking_update" and message["order_id"] == order_id:
                assert webhooks.verify(secret, header, raw)
                found.append(message)
        return found if len(found) >= 4 else None

    found = await eventually(updates, "four tracking updates at the callback")
    assert sorted(m["event_id"] for m in found) == ["e1", "e2", "e3", "e4"]
    assert {m["carrier"] for m in found} == {"DHL"}


async def test_tracking_input_is_checked(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    path = f"/v1/shipments/{key}/tracking"
    for bad in (
        {"events": []},
        {"events": [{"event_id": "x", "status": "LOST", "at": "2026-11-20T07:00:00Z"}]},
        {"events": [{"event_id": "x", "status": "IN_TRANSIT", "at": "2026-11-20T07:00:00"}]},
    ):
        status, answer = await stack.call("POST", path, key="WH-BERLIN", json=bad)
        assert status == 422, (bad, answer)
    status, answer = await stack.call(
        "POST",
        path,
        key="WH-MUNICH",
        json={"events": [{"event_id": "x", "status": "IN_TRANSIT", "at": "2026-11-20T07:00:00Z"}]},
    )
    assert status == 404, answer


async def test_three_failed_deliveries_return_the_shipment_to_its_location(
    stack: Stack, callback: Callback
) -> None:
    channel, secret = await shop(stack, callback, return_shipping_fee="2.00")
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 3)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for action, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 2}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "JD0002"}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, answer
    path = f"/v1/shipments/{key}/tracking"
    for n in (1, 2, 3):
        status, answer = await stack.call(
            "POST",
            path,
            key="WH-BERLIN",
            json={
                "events": [
                    {
                        "event_id": f"fail-{n}",
                        "status": "DELIVERY_FAILED",
                        "at": f"2026-11-2{n}T10:00:00Z",
                        "detail": "nobody at home",
                    }
                ]
            },
        )
        assert status == 200, answer
        if n < 3:
            status, shipment = await stack.call("GET", f"/v1/shipments/{key}", key="ops")
            assert shipment["status"] == "SHIPPED", shipment

    # the third failure sends it back: a RETURN_TO_SENDER return to Berlin, the order
    # RETURNED (nothing of it was delivered)
    view = await stack.wait_for(
        order_id,
        lambda v: v["status"] == "RETURNED" and bool(v["returns"]),
        "the order RETURNED with its return to sender",
    )
    (back,) = view["returns"]
    assert back["type"] == "RETURN_TO_SENDER" and back["location_id"] == "WH-BERLIN"
    assert back["lines"] == [{"line_id": "1", "quantity": 2}]
    assert {s["status"] for s in view["shipments"]} == {"RETURNED_TO_SENDER"}

    async def listed() -> list[str] | None:
        # the return's own workflow writes its record
        status, page = await stack.call("GET", f"/v1/returns?order_id={order_id}", key=channel)
        assert status == 200, page
        return [r["type"] for r in page["returns"]] or None

    assert await eventually(listed, "the return listed") == ["RETURN_TO_SENDER"]
    # Berlin's work-order list says so
    status, listed_wo = await stack.call(
        "GET", "/v1/locations/WH-BERLIN/work-orders?status=RETURNED_TO_SENDER", key="WH-BERLIN"
    )
    assert status == 200, listed_wo
    mine = [w for w in listed_wo["work_orders"] if w["shipment_key"] == key]
    assert [w["status"] for w in mine] == ["RETURNED_TO_SENDER"], listed_wo
    # a delivery reported now is refused: the parcel is on its way back
    status, late = await stack.call("POST", f"/v1/shipments/{key}/deliver", key="WH-BERLIN")
    assert status == 409, late

    # Berlin receives the parcel: both units back in stock, the whole price refunded
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{back['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 2, "condition": "new"}]},
    )
    assert status == 200 and outcome["refund_amount"] == "39.98", outcome
    rows = {r.location_id: r for r in await stack.store.inventory.stock([sku])}
    assert rows["WH-BERLIN"].on_hand == 3

    async def refunded() -> dict[str, Any] | None:
        for header, raw in callback.received:
            message = json.loads(raw)
            if message.get("type") == "refund_notice" and message["order_id"] == order_id:
                assert webhooks.verify(secret, header, raw)
                return dict(message)
        return None

    notice = await eventually(refunded, "the refund notice")
    assert notice["amount"] == "39.98" and notice["shipping_fee"] == "0"
    await stack.wait_status(order_id, "COMPLETED")


async def test_a_shipment_keeps_a_bounded_number_of_events(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    path = f"/v1/shipments/{key}/tracking"
    for batch in range(MAX_SHIPMENT_EVENTS // 100):
        events = [
            {"event_id": f"b{batch}-{i}", "status": "IN_TRANSIT", "at": "2026-11-20T07:00:00Z"}
            for i in range(100)
        ]
        status, answer = await stack.call("POST", path, key="WH-BERLIN", json={"events": events})
        assert status == 200 and answer["recorded"] == 100, answer
    one_more = {"event_id": "x", "status": "IN_TRANSIT", "at": "2026-11-20T07:00:00Z"}
    status, answer = await stack.call("POST", path, key="WH-BERLIN", json={"events": [one_more]})
    assert (status, answer["error"]["code"]) == (409, "too_many_events"), answer
    # a repeat of events it has is still acknowledged
    again = {"event_id": "b0-0", "status": "IN_TRANSIT", "at": "2026-11-20T07:00:00Z"}
    status, answer = await stack.call("POST", path, key="WH-BERLIN", json={"events": [again]})
    assert status == 200 and answer["repeated"] == 1, answer
