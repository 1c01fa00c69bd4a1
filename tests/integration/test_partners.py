"""Work orders to partners' webhooks: a failing partner is shown and never holds back a
cancel; a refusing partner holds the order until an operator resumes it; a location that
was sent a work order hears of its cancellation. The partner is a real HTTP server whose
answers the test sets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from oms import webhooks
from tests.integration.conftest import WAIT_SECONDS, Stack, order_body, unique_sku


@dataclass
class Partner:
    """A warehouse system: answers with `status`, keeps what it was sent."""

    server: TestServer
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    signatures_ok: bool = True
    secret: str = ""  # the location's webhook secret, answered when its URL was set

    def of_type(self, kind: str, order_id: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind and m["order_id"] == order_id]


@pytest.fixture
async def partner(stack: Stack) -> AsyncIterator[Partner]:
    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        if not webhooks.verify(found.secret, request.headers.get("X-OMS-Signature"), raw):
            found.signatures_ok = False
        if found.status < 300:
            found.received.append(json.loads(raw))
        return web.json_response({"ok": found.status < 300}, status=found.status)

    app = web.Application()
    app.router.add_post("/work-orders", hook)
    server = TestServer(app)
    await server.start_server()
    found = Partner(server=server)
    try:
        yield found
    finally:
        await server.close()


async def partner_location(stack: Stack, partner: Partner) -> str:
    location_id = f"WH-PARTNER-{uuid.uuid4().hex[:6]}"
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Partner warehouse",
                "lat": 48.14,
                "lon": 11.58,
                "webhook_url": str(partner.server.make_url("/work-orders")),
            }
        ],
    )
    assert status == 200, body
    assert body["webhook_secrets"][0]["location_id"] == location_id
    partner.secret = body["webhook_secrets"][0]["secret"]
    await stack.add_key(location_id, "location", location_id)
    return location_id


async def order_at(stack: Stack, location_id: str) -> str:
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 2)])
    return await stack.create_order(order_body(sku=sku, quantity=2))


async def eventually(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"{what}: not reached in {WAIT_SECONDS}s")
        await asyncio.sleep(0.1)


async def test_a_failing_partner_is_shown_and_a_cancel_does_not_wait_for_it(
    stack: Stack, partner: Partner
) -> None:
    partner.status = 500
    location_id = await partner_location(stack, partner)
    order_id = await order_at(stack, location_id)
    view = await stack.wait_for(
        order_id,
        lambda v: any("failing" in r for r in v["hold_reasons"]),
        "the failing submission shown",
    )
    assert any(e["type"] == "work_order_failing" for e in view["events"])
    assert view["status"] in ("SUBMITTED", "IN_FULFILLMENT")

    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "too slow"}
    )
    assert status == 200, body
    assert loop.time() - started < 10, "the cancel waited for the partner"
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["hold_reasons"] == []

    # the partner recovers: it is never sent the cancelled order's work order
    partner.status = 200
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    assert partner.of_type("work_order", order_id) == []


async def test_a_refusing_partner_holds_the_order_until_resumed(
    stack: Stack, partner: Partner
) -> None:
    partner.status = 404
    location_id = await partner_location(stack, partner)
    order_id = await order_at(stack, location_id)
    view = await stack.wait_status(order_id, "ON_HOLD")
    assert any("refused" in r and "404" in r for r in view["hold_reasons"]), view["hold_reasons"]
    assert any(e["type"] == "work_order_refused" for e in view["events"])

    partner.status = 200  # the partner fixed its side
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/resume", key="ops", json={"comment": "fixed"}
    )
    assert status == 200, body
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["hold_reasons"] == []
    await eventually(lambda: partner.of_type("work_order", order_id), "the work order sent")
    key = await stack.current_shipment(order_id, location_id)
    await stack.fulfil(key, location_id, {"1": 2})
    await stack.wait_status(order_id, "DELIVERED")
    assert partner.signatures_ok


async def test_a_location_sent_a_work_order_hears_of_its_cancellation(
    stack: Stack, partner: Partner
) -> None:
    location_id = await partner_location(stack, partner)
    order_id = await order_at(stack, location_id)
    await eventually(lambda: partner.of_type("work_order", order_id), "the work order sent")
    await stack.wait_for(
        order_id, lambda v: any(e["type"] == "work_order_sent" for e in v["events"]), "sent"
    )
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "changed my mind"}
    )
    assert status == 200, body
    await stack.wait_status(order_id, "CANCELLED")
    await eventually(
        lambda: partner.of_type("work_order_cancelled", order_id), "the cancellation sent"
    )
    [notice] = partner.of_type("work_order_cancelled", order_id)
    [work_order] = partner.of_type("work_order", order_id)
    assert notice["work_order_id"] == work_order["work_order_id"]
    assert notice["line_ids"] == ["1"] and notice["reason"] == "changed my mind"
    assert partner.signatures_ok
    await stack.wait_for(
        order_id,
        lambda v: any(e["type"] == "work_order_cancel_sent" for e in v["events"]),
        "the notice in the audit trail",
    )
