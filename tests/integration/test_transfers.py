"""Click and collect from a warehouse (issue 10, point 3): a pickup store without stock gets
the units by a TRANSFER work order from a warehouse; its own hand-over work order waits
for the transfer's receipt, then the customer collects. Each location sees its part by
its signed webhook and in its work-order list, and reports it through the API."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pypdf import PdfReader

from oms import webhooks
from tests.integration.conftest import Callback, Stack, order_body, unique_sku
from tests.integration.test_partners import eventually


@dataclass
class Receiver:
    """The locations' systems: every work order message, kept per location."""

    server: TestServer
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0

    def messages(self, location_id: str, order_id: str) -> list[dict[str, Any]]:
        return [m for loc, m in self.received if loc == location_id and m["order_id"] == order_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async def hook(request: web.Request) -> web.Response:
        location_id = request.match_info["location_id"]
        raw = await request.read()
        secret = found.secrets.get(location_id, "")
        if not webhooks.verify(secret, request.headers.get(webhooks.SIGNATURE_HEADER), raw):
            found.bad_signatures += 1
        found.received.append((location_id, json.loads(raw)))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hooks/{location_id}", hook)
    server = TestServer(app)
    await server.start_server()
    found = Receiver(server=server)
    try:
        yield found
    finally:
        await server.close()


@dataclass
class Network:
    warehouse: str
    store: str
    channel: str


async def network(stack: Stack, receiver: Receiver | None = None, **channel: Any) -> Network:
    """A warehouse and a pickup store of their own (so nothing else routes there), with
    location keys, webhooks when `receiver` is given, and a channel serving both."""
    suffix = uuid.uuid4().hex[:6]
    warehouse, store = f"WH-T-{suffix}", f"ST-T-{suffix}"
    locations = [
        {"location_id": warehouse, "name": "Transfer warehouse", "lat": 52.4, "lon": 13.3},
        {
            "location_id": store,
            "name": "Pickup store",
            "type": "store",
            "lat": 53.55,
            "lon": 9.99,
            "address_line1": "Jungfernstieg 1",
            "postal_code": "20354",
            "city": "Hamburg",
            "country": "DE",
        },
    ]
    if receiver is not None:
        for loc in locations:
            loc["webhook_url"] = str(receiver.server.make_url(f"/hooks/{loc['location_id']}"))
    status, body = await stack.call("PUT", "/v1/locations", json=locations)
    assert status == 200, body
    if receiver is not None:
        for secret in body["webhook_secrets"]:
            receiver.secrets[secret["location_id"]] = secret["secret"]
    for location_id in (warehouse, store):
        await stack.add_key(location_id, "location", location_id)
    channel_id = await stack.make_channel("cc", **channel)
    return Network(warehouse, store, channel_id)


def pickup_order(net: Network, sku: str, quantity: int = 2) -> dict[str, Any]:
    return order_body(
        channel=net.channel,
        sku=sku,
        quantity=quantity,
        delivery={"type": "pickup", "pickup_location_id": net.store},
    )


async def available(stack: Stack, sku: str) -> dict[str, int]:
    """Units on hand and not reserved, per location holding the SKU."""
    return {r.location_id: r.on_hand - r.reserved for r in await stack.store.inventory.stock([sku])}


async def work_orders(stack: Stack, location_id: str, kind: str) -> list[dict[str, Any]]:
    status, body = await stack.call(
        "GET", f"/v1/locations/{location_id}/work-orders?kind={kind}", key=location_id
    )
    assert status == 200, body
    return list(body["work_orders"])


async def step(
    stack: Stack, key: str, work_order_id: str, name: str, body: Any = None
) -> tuple[int, Any]:
    return await stack.call(
        "POST", f"/v1/work-orders/{quote(work_order_id)}/{name}", key=key, json=body or {}
    )


async def test_click_and_collect_from_a_warehouse_transfers_then_hands_over(
    stack: Stack, receiver: Receiver, callback: Callback
) -> None:
    net = await network(stack, receiver, callback_url=callback.url())
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 5)])  # the pickup store has none
    order_id = await stack.create_order(pickup_order(net, sku), key="ops")
    await stack.current_shipment(order_id, net.warehouse)  # released there
    view = await stack.order(order_id)
    assert view["status"] == "IN_FULFILLMENT"
    decision = view["routing"][-1]
    assert decision["location_id"] == net.warehouse
    assert decision["transfer_to"] == net.store
    assert f"transferred to {net.store}" in decision["reason"]
    transfer_id, handover_id = f"{order_id}-WO1", f"{order_id}-WO1-H"
    kinds = {w["work_order_id"]: (w["kind"], w["location_id"]) for w in view["work_orders"]}
    assert kinds == {
        transfer_id: ("TRANSFER", net.warehouse),
        handover_id: ("PACKAGING", net.store),
    }
    assert await available(stack, sku) == {net.warehouse: 3}
    # the warehouse's delivery note is addressed to the pickup store, for the customer
    status, pdf = await stack.call(
        "GET", f"/v1/documents/{quote(transfer_id)}-delivery_note", key=net.warehouse
    )
    assert status == 200, pdf
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Pickup store (pickup: Ada)" in text and "Jungfernstieg 1" in text

    # each location got its part by its own signed webhook
    await eventually(
        lambda: (
            receiver.messages(net.warehouse, order_id) and receiver.messages(net.store, order_id)
        ),
        "both work orders sent",
    )
    (to_warehouse,) = receiver.messages(net.warehouse, order_id)
    assert to_warehouse["kind"] == "TRANSFER"
    assert to_warehouse["destination_id"] == net.store
    (to_store,) = receiver.messages(net.store, order_id)
    assert to_store["kind"] == "PACKAGING" and to_store["work_order_id"] == handover_id
    assert to_store["status"] == "AWAITING_TRANSFER"
    assert to_store["transfer_from"] == net.warehouse
    assert receiver.bad_signatures == 0

    # and in its work-order list, by kind
    (listed,) = [w for w in await work_orders(stack, net.warehouse, "TRANSFER")]
    assert listed["work_order_id"] == transfer_id and listed["destination_id"] == net.store
    assert listed["steps"] == ["pick", "ship"]
    assert await work_orders(stack, net.warehouse, "PACKAGING") == []
    (waiting,) = await work_orders(stack, net.store, "PACKAGING")
    assert waiting["work_order_id"] == handover_id and waiting["status"] == "AWAITING_TRANSFER"
    assert waiting["steps"] == ["receive", "deliver"]

    # the store cannot hand over what has not arrived; the warehouse does not hand over
    status, err = await step(stack, net.store, handover_id, "deliver")
    assert status == 409, err
    pick_all = {"lines": [{"line_id": "1", "picked_quantity": 2}]}
    status, err = await step(stack, net.store, handover_id, "pick", pick_all)
    assert status == 409 and err["error"]["code"] == "wrong_step", err
    status, err = await step(stack, net.store, transfer_id, "pick")
    assert status == 404, err  # not the store's work order

    status, body = await step(
        stack,
        net.warehouse,
        transfer_id,
        "pick",
        {"lines": [{"line_id": "1", "picked_quantity": 2}]},
    )
    assert status == 200, body
    status, body = await step(
        stack, net.warehouse, transfer_id, "ship", {"carrier": "DHL", "tracking_number": "T-42"}
    )
    assert status == 200 and body["status"] == "SHIPPED", body
    status, err = await step(stack, net.warehouse, transfer_id, "deliver")
    assert status == 409 and err["error"]["code"] == "wrong_step", err
    view = await stack.wait_for(
        order_id, lambda v: v["lines"][0]["status"] == "IN_TRANSFER", "line in transfer"
    )
    assert view["status"] == "IN_FULFILLMENT"
    (transfer,) = [s for s in view["shipments"] if s["location_id"] == net.warehouse]
    assert (transfer["status"], transfer["carrier"]) == ("SHIPPED", "DHL")

    status, body = await step(stack, net.store, handover_id, "receive")
    assert status == 200 and body["status"] == "READY_FOR_PICKUP", body
    assert body["shipment_key"] == f"{order_id}-S1-H"
    status, again = await step(stack, net.store, handover_id, "receive")
    assert status == 409, again  # received once
    view = await stack.wait_status(order_id, "READY_FOR_PICKUP")
    assert view["lines"][0]["status"] == "READY_FOR_PICKUP"

    # the web shop hears that the order waits at the store (a signed status update)
    def ready_notices() -> list[tuple[str, dict[str, Any]]]:
        found = [(h, json.loads(raw)) for h, raw in callback.received]
        return [
            (h, m)
            for h, m in found
            if m.get("type") == "tracking_update" and m.get("status") == "READY_FOR_PICKUP"
        ]

    await eventually(ready_notices, "the ready-for-pickup notice")
    ((signature, notice),) = ready_notices()
    assert signature.startswith("t=")
    assert (notice["order_id"], notice["location_id"]) == (order_id, net.store)
    assert notice["shipment_key"] == f"{order_id}-S1-H"
    (ready,) = await work_orders(stack, net.store, "PACKAGING")
    assert ready["status"] == "READY_FOR_PICKUP"
    assert ready["lines"][0]["quantity"] == 2

    status, body = await step(stack, net.store, handover_id, "deliver")
    assert status == 200 and body["status"] == "DELIVERED", body
    view = await stack.wait_status(order_id, "DELIVERED")
    line = view["lines"][0]
    assert (line["status"], line["delivered_quantity"], line["shipped_quantity"]) == (
        "DELIVERED",
        2,
        2,
    )
    assert {s["shipment_key"]: s["status"] for s in view["shipments"]} == {
        f"{order_id}-S1": "DELIVERED",
        f"{order_id}-S1-H": "DELIVERED",
    }
    # the units left the warehouse's stock when they shipped; the store never sold them
    stock = {r.location_id: r for r in await stack.store.inventory.stock([sku])}
    assert (stock[net.warehouse].on_hand, stock[net.warehouse].reserved) == (3, 0)
    assert net.store not in stock or stock[net.store].on_hand == 0
    assert await work_orders(stack, net.store, "PACKAGING") == []  # nothing open
    status, body = await stack.call(
        "GET",
        f"/v1/locations/{net.store}/work-orders?kind=PACKAGING&status=DELIVERED",
        key=net.store,
    )
    assert status == 200 and [w["work_order_id"] for w in body["work_orders"]] == [handover_id]
    # operations' reports count the order as shipped once its units wait at the store
    status, summary = await stack.call(
        "GET", f"/v1/reports/summary?sales_channel={net.channel}", key="ops"
    )
    assert status == 200, summary
    assert summary["order_to_ship"]["count"] == 1, summary
    assert summary["order_to_delivery"]["count"] == 1, summary


async def test_a_store_with_stock_hands_over_its_own(stack: Stack) -> None:
    net = await network(stack)
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 5), (net.store, sku, 2)])
    order_id = await stack.create_order(pickup_order(net, sku), key="ops")
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["routing"][-1]["location_id"] == net.store
    assert view["routing"][-1].get("transfer_to") is None
    assert [w["kind"] for w in view["work_orders"]] == ["PACKAGING"]


async def test_without_transfers_the_order_waits_for_stock_at_the_store(stack: Stack) -> None:
    net = await network(stack, pickup_transfers=False)
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 5)])
    order_id = await stack.create_order(pickup_order(net, sku), key="ops")
    view = await stack.wait_status(order_id, "NOT_ANNOUNCED", "BACKORDERED", "CHECK_ANNOUNCED")
    assert all(d["location_id"] is None for d in view["routing"])
    assert await available(stack, sku) == {net.warehouse: 5}
    # an operator sends it from the warehouse all the same: a transfer to the store
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{quote(order_id)}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": net.warehouse}]},
    )
    assert status == 200, body
    view = await stack.wait_for(
        order_id, lambda v: len(v["work_orders"]) == 2, "the transfer and the hand-over"
    )
    assert view["routing"][-1]["transfer_to"] == net.store
    assert {w["kind"]: w["location_id"] for w in view["work_orders"]} == {
        "TRANSFER": net.warehouse,
        "PACKAGING": net.store,
    }


async def test_a_cancel_before_the_transfer_ships_closes_both_work_orders(
    stack: Stack, receiver: Receiver
) -> None:
    net = await network(stack, receiver)
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 5)])
    order_id = await stack.create_order(pickup_order(net, sku), key="ops")
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    await eventually(lambda: receiver.messages(net.store, order_id), "the store's work order")
    status, body = await stack.call(
        "POST", f"/v1/orders/{quote(order_id)}/cancel", key="ops", json={"reason": "changed mind"}
    )
    assert status in (200, 202), body
    await stack.wait_status(order_id, "CANCELLED")
    assert await available(stack, sku) == {net.warehouse: 5}
    status, body = await stack.call(
        "GET",
        f"/v1/locations/{net.store}/work-orders?kind=PACKAGING&status=CANCELLED",
        key=net.store,
    )
    assert status == 200 and [w["work_order_id"] for w in body["work_orders"]] == [
        f"{order_id}-WO1-H"
    ]
    # both locations hear of it
    await eventually(
        lambda: (
            any(m["type"] == "work_order_cancelled" for m in receiver.messages(net.store, order_id))
            and any(
                m["type"] == "work_order_cancelled"
                for m in receiver.messages(net.warehouse, order_id)
            )
        ),
        "both told of the cancel",
    )


async def test_units_the_warehouse_lacks_are_routed_again(stack: Stack) -> None:
    net = await network(stack)
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 2)])
    order_id = await stack.create_order(pickup_order(net, sku), key="ops")
    await stack.current_shipment(order_id, net.warehouse)  # released there
    transfer_id = f"{order_id}-WO1"
    status, body = await step(
        stack,
        net.warehouse,
        transfer_id,
        "pick",
        {"lines": [{"line_id": "1", "picked_quantity": 1}]},
    )
    assert status == 200, body
    view = await stack.wait_for(
        order_id, lambda v: v["lines"][0]["status"] == "BACKORDERED", "one unit backordered"
    )
    assert view["lines"][0]["status"] == "BACKORDERED"
    (waiting,) = await work_orders(stack, net.store, "PACKAGING")
    assert {ln["status"] for ln in waiting["lines"]} == {"AWAITING_TRANSFER"}
