"""A location's work-order list (GET /v1/locations/{id}/work-orders): a work order
cancelled after the location got it stays listed as CANCELLED with its work order id,
a partly cancelled one shows its cancelled lines, and the list filters by status and
pages. Each test uses a location of its own, so the lists hold only its work orders."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from api.fulfillment import WorkOrderList
from store.tables import Shipment
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually


@dataclass
class Warehouse:
    """A warehouse system behind a webhook: keeps every message it takes."""

    server: TestServer
    messages: list[dict[str, Any]] = field(default_factory=list)

    def sent(self, kind: str, order_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind and m["order_id"] == order_id]


@pytest.fixture
async def warehouse() -> AsyncIterator[Warehouse]:
    async def take(request: web.Request) -> web.Response:
        found.messages.append(json.loads(await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", take)
    server = TestServer(app)
    await server.start_server()
    found = Warehouse(server=server)
    try:
        yield found
    finally:
        await server.close()


async def new_location(stack: Stack, webhook_url: str | None = None) -> str:
    """A location of this test with its own key (named like the location)."""
    location_id = f"WH-WOL-{uuid.uuid4().hex[:8]}"
    location: dict[str, Any] = {
        "location_id": location_id,
        "name": "Work-order list test",
        "lat": 52.40,
        "lon": 13.05,
    }
    if webhook_url:
        location["webhook_url"] = webhook_url
    status, body = await stack.call("PUT", "/v1/locations", json=[location])
    assert status == 200, body
    await stack.add_key(location_id, "location", location_id)
    return location_id


async def two_line_order(stack: Stack, location_id: str) -> str:
    sku_a, sku_b = unique_sku(), unique_sku()
    await stack.set_stock([(location_id, sku_a, 1), (location_id, sku_b, 1)])
    body = order_body(sku=sku_a, quantity=1, price="10.00")
    body["lines"] = [
        {"line_id": "A", "sku": sku_a, "quantity": 1, "unit_price": "10.00"},
        {"line_id": "B", "sku": sku_b, "quantity": 1, "unit_price": "10.00"},
    ]
    body["payment"]["amount"] = "20.00"
    return await stack.create_order(body)


async def one_line_order(stack: Stack, location_id: str) -> str:
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 1)])
    return await stack.create_order(order_body(sku=sku, quantity=1))


async def listing(
    stack: Stack, location_id: str, query: str = "", key: str | None = None
) -> dict[str, Any]:
    status, body = await stack.call(
        "GET", f"/v1/locations/{location_id}/work-orders{query}", key=key or location_id
    )
    assert status == 200, body
    WorkOrderList.model_validate(body)  # the answer is what the OpenAPI says
    return dict(body)


def entry(body: dict[str, Any], shipment_key: str) -> dict[str, Any] | None:
    return next((w for w in body["work_orders"] if w["shipment_key"] == shipment_key), None)


def keys(body: dict[str, Any]) -> list[str]:
    return [w["shipment_key"] for w in body["work_orders"]]


async def cancel(stack: Stack, order_id: str, line_ids: list[str] | None = None) -> None:
    request: dict[str, Any] = {"reason": "customer changed their mind"}
    if line_ids is not None:
        request["line_ids"] = line_ids
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json=request
    )
    assert status == 200, body


def recent(stamp: str | None) -> bool:
    if stamp is None:
        return False
    age = datetime.now(UTC) - datetime.fromisoformat(stamp)
    return timedelta(0) <= age < timedelta(minutes=5)


async def test_a_work_order_cancelled_after_it_was_sent_is_listed_cancelled(
    stack: Stack, warehouse: Warehouse
) -> None:
    location_id = await new_location(stack, str(warehouse.server.make_url("/hook")))
    order_id = await one_line_order(stack, location_id)
    key = await stack.current_shipment(order_id, location_id)
    await stack.wait_for(
        order_id, lambda v: any(e["type"] == "work_order_sent" for e in v["events"]), "sent"
    )
    [work_order] = warehouse.sent("work_order", order_id)
    before = entry(await listing(stack, location_id), key)
    assert before is not None
    assert (before["work_order_id"], before["status"], before["cancelled_at"]) == (
        work_order["work_order_id"],
        "OPEN",
        None,
    )
    assert [(ln["line_id"], ln["status"]) for ln in before["lines"]] == [("1", "OPEN")]

    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")

    async def listed_cancelled() -> dict[str, Any] | None:
        found = entry(await listing(stack, location_id), key)
        return found if found is not None and found["status"] == "CANCELLED" else None

    after = await eventually(listed_cancelled, "the work order listed CANCELLED")
    assert after["work_order_id"] == work_order["work_order_id"]
    assert after["order_id"] == order_id and after["location_id"] == location_id
    assert recent(after["cancelled_at"]), after
    [line] = after["lines"]
    assert (line["line_id"], line["status"], line["released_quantity"]) == ("1", "CANCELLED", 1)
    assert line["cancelled_at"] == after["cancelled_at"]

    # the location was told too, about the same work order
    async def notice() -> dict[str, Any] | None:
        return next(iter(warehouse.sent("work_order_cancelled", order_id)), None)

    told = await eventually(notice, "the cancellation sent to the location")
    assert told["work_order_id"] == after["work_order_id"]

    # the filters: CANCELLED lists it, the open ones do not; one shipment says the same
    assert keys(await listing(stack, location_id, "?status=CANCELLED")) == [key]
    assert keys(await listing(stack, location_id, "?status=OPEN,PICKED,SHIPPED")) == []
    status, shipment = await stack.call("GET", f"/v1/shipments/{key}", key=location_id)
    assert status == 200, shipment
    assert (shipment["work_order_id"], shipment["status"]) == (after["work_order_id"], "CANCELLED")
    assert shipment["cancelled_at"] == after["cancelled_at"]
    # ops (and admin) see any location's list
    assert keys(await listing(stack, location_id, key="ops")) == [key]
    assert keys(await listing(stack, location_id, key="admin")) == [key]


async def test_a_partly_cancelled_work_order_shows_its_cancelled_lines(stack: Stack) -> None:
    location_id = await new_location(stack)
    order_id = await two_line_order(stack, location_id)
    key = await stack.current_shipment(order_id, location_id)
    first = entry(await listing(stack, location_id), key)
    assert first is not None and first["status"] == "OPEN"
    assert [(ln["line_id"], ln["status"]) for ln in first["lines"]] == [
        ("A", "OPEN"),
        ("B", "OPEN"),
    ]

    await cancel(stack, order_id, ["A"])

    async def a_cancelled() -> dict[str, Any] | None:
        found = entry(await listing(stack, location_id), key)
        lines = {ln["line_id"]: ln["status"] for ln in (found or {}).get("lines", [])}
        return found if lines.get("A") == "CANCELLED" else None

    partly = await eventually(a_cancelled, "line A listed CANCELLED")
    assert (partly["status"], partly["cancelled_at"]) == ("OPEN", None)
    lines = {ln["line_id"]: ln for ln in partly["lines"]}
    assert lines["B"]["status"] == "OPEN" and lines["B"]["cancelled_at"] is None
    assert recent(lines["A"]["cancelled_at"]), lines["A"]
    assert keys(await listing(stack, location_id, "?status=OPEN")) == [key]
    assert keys(await listing(stack, location_id, "?status=CANCELLED")) == []

    # the last line cancelled: the whole work order is, at the time of that cancel
    await cancel(stack, order_id, ["B"])
    await stack.wait_status(order_id, "CANCELLED")

    async def all_cancelled() -> dict[str, Any] | None:
        found = entry(await listing(stack, location_id), key)
        return found if found is not None and found["status"] == "CANCELLED" else None

    done = await eventually(all_cancelled, "the work order listed CANCELLED")
    lines = {ln["line_id"]: ln for ln in done["lines"]}
    assert [ln["status"] for ln in lines.values()] == ["CANCELLED", "CANCELLED"]
    assert lines["A"]["cancelled_at"] == partly["lines"][0]["cancelled_at"]
    assert done["cancelled_at"] == lines["B"]["cancelled_at"]
    assert datetime.fromisoformat(done["cancelled_at"]) > datetime.fromisoformat(
        lines["A"]["cancelled_at"]
    )


async def test_the_list_filters_by_status_and_pages(stack: Stack) -> None:
    location_id = await new_location(stack)
    orders: list[str] = []
    shipments: list[str] = []
    for _ in range(4):  # one after the other: released in this order
        orders.append(await one_line_order(stack, location_id))
        shipments.append(await stack.current_shipment(orders[-1], location_id))
    delivered, cancelled, old_cancel = shipments[0], shipments[1], shipments[2]

    await stack.fulfil(delivered, location_id, {"1": 1})
    await stack.wait_status(orders[0], "DELIVERED")
    for order_id in orders[1:3]:
        await cancel(stack, order_id)
        await stack.wait_status(order_id, "CANCELLED")

    async def both_cancelled() -> bool | None:
        found = await listing(stack, location_id, "?status=CANCELLED")
        return True if set(keys(found)) == {cancelled, old_cancel} else None

    await eventually(both_cancelled, "both cancels in the list")
    # one of them was cancelled 8 days ago: past the default view
    async with stack.store.db.transaction() as session:
        await session.execute(
            update(Shipment)
            .where(Shipment.shipment_key == old_cancel)
            .values(updated_at=datetime.now(UTC) - timedelta(days=8))
        )

    # default: the open ones and those cancelled in the last 7 days, newest first
    default = await listing(stack, location_id)
    assert keys(default) == [shipments[3], cancelled]
    assert [w["status"] for w in default["work_orders"]] == ["OPEN", "CANCELLED"]
    assert (default["total"], default["limit"], default["offset"]) == (2, 100, 0)
    assert default["status"] == [
        "AWAITING_TRANSFER",
        "OPEN",
        "PICKED",
        "SHIPPED",
        "READY_FOR_PICKUP",
        "CANCELLED",
    ]
    since = datetime.fromisoformat(default["cancelled_since"])
    assert abs(datetime.now(UTC) - timedelta(days=7) - since) < timedelta(minutes=5)

    by_status = {
        "DELIVERED": [delivered],
        "CANCELLED": [old_cancel, cancelled],
        "OPEN": [shipments[3]],
        "PICKED,SHIPPED": [],
        "open,delivered": [shipments[3], delivered],
    }
    for query, expected in by_status.items():
        found = await listing(stack, location_id, f"?status={query}")
        assert keys(found) == expected, query
        assert found["total"] == len(expected), query
    old = entry(await listing(stack, location_id, "?status=CANCELLED"), old_cancel)
    assert old is not None
    assert datetime.now(UTC) - datetime.fromisoformat(old["cancelled_at"]) > timedelta(days=7)

    # pages: limit and offset over everything, newest first, with the total
    everything = "?status=OPEN,PICKED,SHIPPED,DELIVERED,CANCELLED,BACKORDERED"
    pages = [
        await listing(stack, location_id, f"{everything}&limit=3&offset={offset}")
        for offset in (0, 3)
    ]
    assert [keys(p) for p in pages] == [shipments[:0:-1], shipments[:1]]
    assert {p["total"] for p in pages} == {4}
    largest = await listing(stack, location_id, "?limit=500")
    assert largest["limit"] == 500
    status, body = await stack.call(
        "GET", f"/v1/locations/{location_id}/work-orders?limit=501", key=location_id
    )
    assert (status, body["error"]["code"]) == (400, "invalid_query"), body


async def test_bad_filters_and_other_locations_are_refused(stack: Stack) -> None:
    location_id = await new_location(stack)
    for query in (
        "?status=LOST",
        "?status=OPEN,lost",
        "?status=",
        "?status=,",
        "?kind=RETURN_TO_VENDOR&status=PICKED",
    ):
        status, body = await stack.call(
            "GET", f"/v1/locations/{location_id}/work-orders{query}", key=location_id
        )
        assert (status, body["error"]["code"]) == (422, "unknown_status"), (query, body)
        assert body["error"]["details"][0]["field"] == "status"
    status, body = await stack.call(
        "GET", f"/v1/locations/{location_id}/work-orders?limit=many", key=location_id
    )
    assert (status, body["error"]["code"]) == (400, "invalid_query")
    status, body = await stack.call(
        "GET", f"/v1/locations/{location_id}/work-orders?kind=TRUCK", key=location_id
    )
    assert (status, body["error"]["code"]) == (400, "invalid_query"), body
    # a location key sees its own location only; a webshop key none
    status, body = await stack.call("GET", "/v1/locations/WH-BERLIN/work-orders", key=location_id)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await stack.call("GET", f"/v1/locations/{location_id}/work-orders", key="web")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    # the API description names the filter
    status, document = await stack.call("GET", "/openapi.json")
    assert status == 200
    operation = document["paths"]["/v1/locations/{location_id}/work-orders"]["get"]
    queried = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert queried == {"status", "kind", "limit", "offset"}
