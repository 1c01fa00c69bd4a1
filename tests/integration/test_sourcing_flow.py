"""Sourcing and inventory over HTTP: races for the last units, buffers and exclusions,
split policies, CHECK_ANNOUNCED with manual assignment, explanations."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiohttp import web
from aiohttp.test_utils import TestServer

from oms import webhooks
from oms.ids import order_key
from tests.integration.conftest import Stack, order_body, unique_sku


async def test_twenty_orders_race_for_five_units(stack: Stack) -> None:
    channel = await stack.make_channel("src", auto_cancel_not_announced=True)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    bodies = [order_body(channel=channel, sku=sku, quantity=1) for _ in range(20)]
    answers = await asyncio.gather(
        *(stack.call("POST", "/v1/orders", key="ops", json=b) for b in bodies)
    )
    assert [status for status, _ in answers] == [201] * 20
    views = await asyncio.gather(
        *(stack.wait_status(b["order_id"], "IN_FULFILLMENT", "CANCELLED") for b in bodies)
    )
    assert sorted(v["status"] for v in views).count("IN_FULFILLMENT") == 5
    rows = {r.location_id: r for r in await stack.store.inventory.stock([sku])}
    assert (rows["WH-BERLIN"].on_hand, rows["WH-BERLIN"].reserved) == (5, 5)
    active = [
        r
        for b in bodies
        for r in await stack.store.inventory.reservations_for_order(
            order_key(b["order_id"], channel)
        )
        if r.status == "ACTIVE"
    ]
    assert sum(r.quantity for r in active) == 5


async def test_buffers_and_exclusions_shape_availability_and_routing(stack: Stack) -> None:
    channel = await stack.make_channel(
        "src", safety_buffers={"WH-BERLIN": 3, "store": 1}, excluded_locations=["WH-LONDON"]
    )
    sku = unique_sku()
    await stack.set_stock(
        [
            ("WH-BERLIN", sku, 4),
            ("ST-HAMBURG", sku, 2),
            ("WH-LONDON", sku, 50),
            ("WH-MUNICH", sku, 2),
        ]
    )
    await stack.add_key(channel, "webshop", channel)
    status, body = await stack.call("GET", f"/v1/availability?sku={sku}", key=channel)
    assert status == 200
    item = body["items"][0]
    assert {loc["location_id"]: loc["atp"] for loc in item["locations"]} == {
        "WH-BERLIN": 1,
        "ST-HAMBURG": 1,
        "WH-MUNICH": 2,
    }
    assert item["atp"] == 4

    # two units: Berlin (nearest) holds only one for this channel, so Hamburg is too
    # small as well and Munich, the only place with two, gets the line
    order_id = await stack.create_order(
        order_body(channel=channel, sku=sku, quantity=2), key=channel
    )
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "WH-MUNICH"
    candidates = {c["location_id"]: c for c in view["routing"][0]["candidates"]}
    assert "excluded" in candidates["WH-LONDON"]["rejected_reason"]
    assert "stock" in candidates["WH-BERLIN"]["rejected_reason"]
    assert candidates["WH-MUNICH"]["rejected_reason"] is None
    assert set(candidates["WH-MUNICH"]["parts"]) == {
        "distance",
        "stock",
        "backlog",
        "cost",
        "priority",
    }


async def test_split_lines_ship_from_two_locations(stack: Stack) -> None:
    sku_a, sku_b = unique_sku(), unique_sku()
    await stack.set_stock([("WH-BERLIN", sku_a, 5), ("WH-MUNICH", sku_b, 5)])
    body = order_body(sku=sku_a, quantity=1)
    body["lines"].append({"line_id": "2", "sku": sku_b, "quantity": 1, "unit_price": "19.99"})
    body["payment"]["amount"] = "39.98"
    order_id = await stack.create_order(body)
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert {ln["line_id"]: ln["location_id"] for ln in view["lines"]} == {
        "1": "WH-BERLIN",
        "2": "WH-MUNICH",
    }
    # every line carries its own explanation
    explained = {d["line_id"]: d for d in view["routing"]}
    assert explained["1"]["location_id"] == "WH-BERLIN"
    assert explained["2"]["location_id"] == "WH-MUNICH"
    for decision in explained.values():
        chosen = [c for c in decision["candidates"] if c["location_id"] == decision["location_id"]]
        assert chosen and chosen[0]["rejected_reason"] is None and chosen[0]["parts"]
        assert decision["reason"].startswith(decision["location_id"])
    berlin = await stack.current_shipment(order_id, "WH-BERLIN")
    munich = await stack.current_shipment(order_id, "WH-MUNICH")
    await stack.fulfil(berlin, "WH-BERLIN", {"1": 1})
    await stack.wait_status(order_id, "PARTIALLY_SHIPPED", "SHIPPED")
    await stack.fulfil(munich, "WH-MUNICH", {"2": 1})
    await stack.wait_status(order_id, "DELIVERED")


async def test_ship_complete_waits_in_check_announced_for_manual_assignment(
    stack: Stack,
) -> None:
    channel = await stack.make_channel("src", split_policy="ship_complete")
    sku_a, sku_b = unique_sku(), unique_sku()
    await stack.set_stock(
        [("WH-BERLIN", sku_a, 5), ("WH-MUNICH", sku_b, 5), ("WH-LONDON", sku_a, 1)]
    )
    body = order_body(channel=channel, sku=sku_a, quantity=1)
    body["lines"].append({"line_id": "2", "sku": sku_b, "quantity": 1, "unit_price": "19.99"})
    body["payment"]["amount"] = "39.98"
    order_id = await stack.create_order(body, key="ops")
    view = await stack.wait_status(order_id, "CHECK_ANNOUNCED")
    assert view["hold_reasons"], view
    assert all(line["status"] == "CREATED" for line in view["lines"])

    # an assignment the stock cannot cover is refused and changes nothing
    status, err = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": "WH-MUNICH"}]},
    )
    assert status == 409 and err["error"]["code"] == "insufficient_stock"
    status, err = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": "MARS"}]},
    )
    assert status == 422 and err["error"]["code"] == "unknown_location"

    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={
            "assignments": [
                {"line_id": "1", "location_id": "WH-BERLIN"},
                {"line_id": "2", "location_id": "WH-MUNICH"},
            ],
            "comment": "customer accepts two parcels",
        },
    )
    assert status == 200, result
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert "assigned_manually" in [e["type"] for e in view["events"]]
    await stack.fulfil(await stack.current_shipment(order_id, "WH-BERLIN"), "WH-BERLIN", {"1": 1})
    await stack.fulfil(await stack.current_shipment(order_id, "WH-MUNICH"), "WH-MUNICH", {"2": 1})
    await stack.wait_status(order_id, "DELIVERED")

    status, err = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": "WH-BERLIN"}]},
    )
    assert status == 409 and err["error"]["code"] == "not_assignable"


async def test_stock_adjustments_count_once(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-MUNICH", sku, 3)])
    delta = [
        {
            "adjustment_id": f"rcv-{sku}",
            "location_id": "WH-MUNICH",
            "sku": sku,
            "delta": 4,
            "reason": "goods receipt",
        }
    ]
    for _ in range(2):
        status, body = await stack.call("POST", "/v1/inventory/adjustments", json=delta)
        assert status == 200, body
    assert body["items"] == [
        {"location_id": "WH-MUNICH", "sku": sku, "on_hand": 7, "applied": False}
    ]
    status, body = await stack.call(
        "POST",
        "/v1/inventory/adjustments",
        json=[{"location_id": "WH-MUNICH", "sku": sku, "delta": -100, "reason": "count"}],
    )
    assert status == 200 and body["items"][0]["on_hand"] == 0


async def test_bulk_snapshot_of_thousands_of_rows(stack: Stack) -> None:
    sku = unique_sku()
    rows = [{"location_id": "WH-BERLIN", "sku": f"{sku}-{i}", "on_hand": i} for i in range(3000)]
    status, body = await stack.call("PUT", "/v1/inventory", json=rows)
    assert status == 200 and body["updated"] == 3000
    stock = await stack.store.inventory.stock([f"{sku}-2999", f"{sku}-7"])
    assert sorted(r.on_hand for r in stock) == [7, 2999]


async def test_snapshot_keeps_reservations(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    await stack.set_stock([("WH-BERLIN", sku, 10)])
    assert await stack.atp(sku) == {"WH-BERLIN": 8}


async def test_pickup_order_goes_to_its_store(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 10), ("ST-HAMBURG", sku, 5)])
    body = order_body(
        sku=sku, quantity=1, delivery={"type": "pickup", "pickup_location_id": "ST-HAMBURG"}
    )
    order_id = await stack.create_order(body)
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "ST-HAMBURG"  # though Berlin is nearer


async def test_candidates_beyond_the_distance_tolerance_need_an_operator(stack: Stack) -> None:
    channel = await stack.make_channel("src", max_distance_km=500)
    sku = unique_sku()
    await stack.set_stock([("WH-LONDON", sku, 5)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), key="ops")
    view = await stack.wait_status(order_id, "CHECK_ANNOUNCED")
    london = next(c for c in view["routing"][0]["candidates"] if c["location_id"] == "WH-LONDON")
    assert "tolerance" in london["rejected_reason"]
    status, result = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": "WH-LONDON"}]},
    )
    assert status == 200, result
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "WH-LONDON"


async def test_duplicate_approval_reasons_are_refused(stack: Stack) -> None:
    status, err = await stack.call(
        "PUT",
        "/v1/sales-channels",
        json=[
            {
                "channel_id": "dup",
                "approval_reasons": [
                    {"reason": "credit", "rank": 1, "approvers": ["ann"]},
                    {"reason": "credit", "rank": 2, "approvers": ["ben"]},
                ],
            }
        ],
    )
    assert status == 422 and err["error"]["code"] == "validation_error"


async def test_location_with_a_webhook_gets_signed_work_orders(stack: Stack) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/work-orders", hook)
    server = TestServer(app)
    await server.start_server()
    try:
        location_id = f"WH-HOOK-{uuid.uuid4().hex[:6]}"
        status, body = await stack.call(
            "PUT",
            "/v1/locations",
            json=[
                {
                    "location_id": location_id,
                    "name": "Sydney",
                    "lat": -33.87,
                    "lon": 151.21,
                    "time_zone": "Australia/Sydney",
                    "webhook_url": str(server.make_url("/work-orders")),
                }
            ],
        )
        assert status == 200, body
        sku = unique_sku()
        await stack.set_stock([(location_id, sku, 3)])
        order_id = await stack.create_order(order_body(sku=sku, quantity=1))
        view = await stack.wait_for(
            order_id,
            lambda v: any(e["type"] == "work_order_sent" for e in v["events"]),
            "the work order sent to the webhook",
        )
        work_order = view["work_orders"][0]["work_order_id"]
        headers, raw = received[0]
        (made,) = body["webhook_secrets"]
        assert webhooks.verify(made["secret"], headers["X-OMS-Signature"], raw)
        assert headers["Idempotency-Key"] == work_order
        payload = json.loads(raw)
        assert payload["order_id"] == order_id and payload["location_id"] == location_id
    finally:
        await server.close()
