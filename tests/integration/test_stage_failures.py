"""Stages that stop and say why (issue 8, point 3): a business failure holds the order
with the stage and the error (hold reasons, events, the OmsHoldReason search attribute)
until an operator fixes it and resumes; a technical failure shows its last error after
the channel's number of attempts while it keeps retrying; a cancel never waits for the
web shop's callback. The web shop is a real local HTTP server whose answers the test sets.
"""

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

from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually
from workflows import search
from workflows.order import order_workflow_id

# an answer slower than this waited for the partner
ANSWER_BOUND_SECONDS = 5.0


@dataclass
class Shop:
    """A web shop's order-response endpoint: answers `status` after `delay` seconds."""

    server: TestServer
    status: int = 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def url(self) -> str:
        return str(self.server.make_url("/oms/callback"))

    def responses(self, order_id: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("order_id") == order_id]


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    async def callback(request: web.Request) -> web.Response:
        found.calls += 1
        raw = await request.read()
        if found.delay:
            await asyncio.sleep(found.delay)
        if found.status < 300:
            found.received.append(json.loads(raw))
        return web.json_response({"ok": found.status < 300}, status=found.status)

    app = web.Application()
    app.router.add_post("/oms/callback", callback)
    server = TestServer(app)
    await server.start_server()
    found = Shop(server=server)
    try:
        yield found
    finally:
        await server.close()


async def shop_order(stack: Stack, shop: Shop) -> str:
    channel = await stack.make_channel(
        "shop", callback_url=shop.url(), stage_attempts_before_alert=2
    )
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    return await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")


async def hold_reason_attribute(stack: Stack, order_id: str) -> str | None:
    described = await stack.client.get_workflow_handle(order_workflow_id(order_id)).describe()
    return described.typed_search_attributes.get(search.HOLD_REASON)


async def attribute_is(stack: Stack, order_id: str, wanted: str | None) -> bool:
    found = await hold_reason_attribute(stack, order_id)
    return found is None if wanted is None else wanted in (found or "")


async def test_a_refusing_web_shop_holds_the_order_with_the_stage_until_resumed(
    stack: Stack, shop: Shop
) -> None:
    shop.status = 404
    order_id = await shop_order(stack, shop)
    view = await stack.wait_status(order_id, "ON_HOLD")
    reasons = view["hold_reasons"]
    assert len(reasons) == 1 and reasons[0].startswith("response: "), reasons
    assert "callback answered 404" in reasons[0], reasons
    assert any(e["type"] == "stage_failed" and "404" in e["detail"] for e in view["events"])
    # the search attribute follows the workflow task that the view came from
    await eventually(
        lambda: _true_or_none(attribute_is(stack, order_id, "response: ")),
        "OmsHoldReason shows response:",
    )
    # a refusal is not retried: one call only
    assert shop.calls == 1

    shop.status = 200  # the shop fixed its endpoint
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/resume", key="ops", json={"comment": "shop fixed"}
    )
    assert status == 200, body
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["hold_reasons"] == []
    assert all(line["planned_ship_date"] for line in view["lines"])
    types = [e["type"] for e in view["events"]]
    assert "resumed" in types and "stage_recovered" in types, types
    assert len(shop.responses(order_id)) == 1
    await eventually(
        lambda: _true_or_none(attribute_is(stack, order_id, None)),
        "OmsHoldReason unset once the stage succeeded",
    )


async def _true_or_none(check: Any) -> bool | None:
    return True if await check else None


async def test_a_failing_web_shop_is_shown_while_the_stage_retries(
    stack: Stack, shop: Shop
) -> None:
    shop.status = 503
    order_id = await shop_order(stack, shop)
    view = await stack.wait_for(
        order_id,
        lambda v: any(r.startswith("response failing after 2 attempts") for r in v["hold_reasons"]),
        "the failing response stage shown after 2 attempts",
    )
    # not held: a technical failure keeps retrying on its own
    assert view["status"] == "APPROVED", view["status"]
    assert "503" in view["hold_reasons"][0], view["hold_reasons"]
    assert any(e["type"] == "stage_failing" for e in view["events"])
    # the search attribute follows the workflow task that the view came from
    await eventually(
        lambda: _true_or_none(attribute_is(stack, order_id, "response failing")),
        "OmsHoldReason shows response failing",
    )

    shop.status = 200
    # the operator need not wait for the next round: resume runs it at once
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/resume", key="ops", json={})
    assert status == 200, body
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["hold_reasons"] == []
    assert len(shop.responses(order_id)) == 1


async def test_a_cancel_does_not_wait_for_a_hanging_web_shop(stack: Stack, shop: Shop) -> None:
    shop.delay = 30  # longer than the callback's own timeout: every attempt hangs
    order_id = await shop_order(stack, shop)
    await eventually(
        lambda: _true_or_none(_called(shop)), "the order response on its way to the shop"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": "changed my mind"}
    )
    took = loop.time() - started
    assert status == 200, body
    assert took < ANSWER_BOUND_SECONDS, f"the cancel waited {took:.1f}s for the web shop"
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["hold_reasons"] == []


async def _called(shop: Shop) -> bool:
    return shop.calls > 0


async def test_invalid_stored_location_configuration_holds_routing_until_fixed(
    stack: Stack,
) -> None:
    """A location edited by hand into a state the API refuses: routing cannot run, so the
    order is held with the location and the problem named; once the location is fixed,
    resume routes it."""
    location_id = f"WH-BROKEN-{uuid.uuid4().hex[:6]}"
    good = {
        "location_id": location_id,
        "name": "Broken warehouse",
        "type": "warehouse",
        "lat": 52.5,
        "lon": 13.4,
        "time_zone": "Europe/Berlin",
        "cutoff_time": "15:00",
        "enabled": False,  # serves no order, even once fixed
    }
    await stack.store.config.upsert_locations([{**good, "time_zone": "Mars/Olympus_Mons"}])
    try:
        sku = unique_sku()
        await stack.set_stock([("WH-BERLIN", sku, 1)])
        order_id = await stack.create_order(order_body(sku=sku, quantity=1), key="ops")
        view = await stack.wait_status(order_id, "ON_HOLD")
        reason = view["hold_reasons"][0]
        assert reason.startswith("routing: "), view["hold_reasons"]
        assert location_id in reason and "time zone" in reason, reason
        # the search attribute follows the workflow task that the view came from
        await eventually(
            lambda: _true_or_none(attribute_is(stack, order_id, "routing: ")),
            "OmsHoldReason shows routing:",
        )
    finally:
        await stack.store.config.upsert_locations([good])
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/resume", key="ops", json={})
    assert status == 200, body
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["hold_reasons"] == []


async def test_a_failing_stage_goes_on_by_itself_once_the_partner_recovers(
    stack: Stack, shop: Shop
) -> None:
    """No operator: the shop fails the first round (2 attempts), then works; the next
    round (30 s later) succeeds and the order carries on with the problem cleared."""
    shop.status = 502
    order_id = await shop_order(stack, shop)
    await stack.wait_for(
        order_id,
        lambda v: any(r.startswith("response failing") for r in v["hold_reasons"]),
        "the failing response stage shown",
    )
    shop.status = 200

    async def carried_on() -> dict[str, Any] | None:
        view = await stack.order(order_id)
        return view if view["status"] == "IN_FULFILLMENT" else None

    view = await eventually(carried_on, "the order on after the shop recovered", seconds=90)
    assert view["hold_reasons"] == []
    assert "stage_recovered" in [e["type"] for e in view["events"]]
    assert "resumed" not in [e["type"] for e in view["events"]]
    assert len(shop.responses(order_id)) == 1


async def test_a_cancel_clears_the_failing_stage_from_the_order(stack: Stack, shop: Shop) -> None:
    shop.status = 500
    order_id = await shop_order(stack, shop)
    await stack.wait_for(
        order_id,
        lambda v: any(r.startswith("response failing") for r in v["hold_reasons"]),
        "the failing response stage shown",
    )
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": "no answer"}
    )
    assert status == 200, body
    view = await stack.wait_for(
        order_id,
        lambda v: v["status"] == "CANCELLED" and not v["hold_reasons"],
        "CANCELLED with nothing left to fix",
    )
    assert view["returns"][0]["type"] == "CANCEL"
    await eventually(
        lambda: _true_or_none(attribute_is(stack, order_id, None)),
        "OmsHoldReason unset once the order is cancelled",
    )


async def test_a_forbidden_work_order_target_holds_the_order(stack: Stack) -> None:
    """A webhook URL written into the store by hand (the API refuses private targets)
    points into a private network: the work order is refused before any connection and
    the order waits ON_HOLD for an operator, instead of retrying forever."""
    location_id = f"WH-PRIVATE-{uuid.uuid4().hex[:6]}"
    await stack.store.config.upsert_locations(
        [
            {
                "location_id": location_id,
                "name": "Private warehouse",
                "type": "warehouse",
                "lat": 52.52,
                "lon": 13.40,
                "time_zone": "Europe/Berlin",
                "cutoff_time": "15:00",
                "webhook_url": "http://10.255.255.1/work-orders",
            }
        ]
    )
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 1)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1), key="ops")
    view = await stack.wait_status(order_id, "ON_HOLD")
    assert any("refused" in r and location_id in r for r in view["hold_reasons"]), view[
        "hold_reasons"
    ]
    # the search attribute follows the workflow task that the view came from
    await eventually(
        lambda: _true_or_none(attribute_is(stack, order_id, "refused")),
        "OmsHoldReason shows refused",
    )
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": "no partner"}
    )
    assert status == 200, body
    await stack.wait_status(order_id, "CANCELLED")
