"""A cancel in flight decides how the order ends (chaos seed 7001).

The cancel of a line that a location holds finishes in two steps: the release confirms
(its `cancelled` report, or a pick shortfall of a line being cancelled), then the cancel
records its CANCEL return. The confirmation settles the last open line; when every other
line has already ended (came back to sender with its return received, or delivered on a
channel whose return window is 0 days) the order used to move to RETURNED / DELIVERED on
that report, skip its wait for cancels in flight and complete at once, before the cancel
had recorded its return: the store's returns table had the CANCEL return, the order view
(its last projection, written at COMPLETED) did not, though its line said the units were
cancelled. DESIGN.md section 3: every cancelled unit is on exactly one CANCEL return.

No worker tricks: with the other line back to sender and received, the order reached
COMPLETED in the very workflow task that applied the release's confirmation, while the
cancel's activity was only scheduled (failed every time before the fix). With the other
line delivered, the 0-day return window's timer raced the cancel's activity instead.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually
from workflows.order import order_workflow_id


async def shop(stack: Stack, **config: Any) -> str:
    channel = f"cif-{uuid.uuid4().hex[:8]}"
    status, answer = await stack.call(
        "PUT", "/v1/sales-channels", json=[{"channel_id": channel, **config}]
    )
    assert status == 200, answer
    await stack.add_key(channel, "webshop", channel)
    return channel


async def post(stack: Stack, path: str, key: str, body: Any = None) -> dict[str, Any]:
    status, answer = await stack.call("POST", path, key=key, json=body)
    assert status == 200, (path, answer)
    return dict(answer)


async def closed(stack: Stack, order_id: str) -> WorkflowExecutionStatus:
    handle = stack.client.get_workflow_handle(order_workflow_id(order_id))

    async def probe() -> WorkflowExecutionStatus | None:
        status = (await handle.describe()).status
        return None if status in (None, WorkflowExecutionStatus.RUNNING) else status

    return await eventually(probe, f"order {order_id} closed")


def cancel_returns(view: dict[str, Any]) -> dict[str, int]:
    units: dict[str, int] = {}
    for ret in view["returns"]:
        if ret["type"] == "CANCEL":
            for line in ret["lines"]:
                units[line["line_id"]] = units.get(line["line_id"], 0) + line["quantity"]
    return units


@pytest.mark.parametrize("other_line", ["returned_to_sender", "delivered"])
async def test_cancel_confirmed_by_the_release_is_on_the_ended_orders_view(
    stack: Stack, other_line: str
) -> None:
    """Line 1 ships from Berlin and ends first (back to sender and received, or delivered
    with a return window of 0 days); line 2 waits at Munich, unpicked, and is cancelled:
    Munich's release confirms, the order ends, and its view has line 2's CANCEL return."""
    channel = await shop(stack, return_window_days=0)
    first, second = unique_sku(), unique_sku()
    await stack.set_stock([("WH-BERLIN", first, 1), ("WH-MUNICH", second, 2)])
    body = order_body(channel=channel, sku=first, quantity=1, price="10.00")
    body["lines"].append({"line_id": "2", "sku": second, "quantity": 2, "unit_price": "10.00"})
    body["payment"]["amount"] = str(Decimal("30.00"))
    order_id = await stack.create_order(body)
    berlin = await stack.current_shipment(order_id, "WH-BERLIN")
    munich = await stack.current_shipment(order_id, "WH-MUNICH")
    assert berlin != munich

    shipment = f"/v1/shipments/{berlin}"
    await post(
        stack, f"{shipment}/pick", "WH-BERLIN", {"lines": [{"line_id": "1", "picked_quantity": 1}]}
    )
    await post(stack, f"{shipment}/ship", "WH-BERLIN", {"carrier": "DHL", "tracking_number": "T1"})
    if other_line == "delivered":
        await post(stack, f"{shipment}/deliver", "WH-BERLIN", {})
    else:
        for n in (1, 2, 3):
            event = {
                "event_id": f"fail-{n}",
                "status": "DELIVERY_FAILED",
                "at": "2026-11-20T10:00:00Z",
            }
            await post(stack, f"{shipment}/tracking", "WH-BERLIN", {"events": [event]})
        view = await stack.wait_for(
            order_id,
            lambda v: any(r["type"] == "RETURN_TO_SENDER" for r in v["returns"]),
            "line 1 back to sender",
        )
        (back,) = view["returns"]
        await post(
            stack,
            f"/v1/returns/{back['return_id']}/receive",
            "WH-BERLIN",
            {"lines": [{"line_id": "1", "quantity": 1, "condition": "new"}]},
        )
        await stack.wait_for(
            order_id,
            lambda v: [r["status"] for r in v["returns"]] == ["RECEIVED"],
            "the return to sender received",
        )
    view = await stack.wait_for(
        order_id,
        lambda v: [(ln["line_id"], ln["status"]) for ln in v["lines"]][1] == ("2", "RELEASED"),
        "line 2 still at Munich",
    )
    assert view["status"] in ("PARTIALLY_SHIPPED", "IN_FULFILLMENT"), view["status"]

    # Munich's release confirms the cancel; that report settles the order's last line
    status, answer = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        key=channel,
        json={"reason": "too slow", "line_ids": ["2"]},
    )
    assert status in (200, 202), answer
    assert await closed(stack, order_id) == WorkflowExecutionStatus.COMPLETED

    view = await stack.order(order_id)
    line = view["lines"][1]
    assert (line["line_id"], line["status"], line["cancelled_quantity"]) == ("2", "CANCELLED", 2)
    # the CANCEL return is in the view as it is in the returns table
    assert cancel_returns(view) == {"2": 2}, view["returns"]
    rows, _ = await stack.store.returns.search(order_id=order_id)
    stored = [(r.type, ln["line_id"], ln["quantity"]) for r in rows for ln in r.lines]
    shown = [
        (r["type"], ln["line_id"], ln["quantity"]) for r in view["returns"] for ln in r["lines"]
    ]
    assert sorted(stored) == sorted(shown)
    # every line ended: one came back or was delivered, the other was cancelled
    assert view["status"] == "COMPLETED", view["status"]
