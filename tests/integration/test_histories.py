"""Every path of the order lifecycle, run for real and replayed on the current code.

Each scenario drives one path over HTTP (or the Temporal client, where an engineer would
act there), then replays the histories of the order and its releases. With
`OMS_RECORD_HISTORIES=1` (SQLite run) the histories are written to tests/histories/,
where tests/test_replay.py replays them on every later change of the workflow code: a
change that would break orders in flight fails there (put it behind `workflow.patched`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import Gate, count, gated_worker, private_stack, wait_history
from workers.main import WORKFLOWS
from workflows.fulfillment import fulfillment_workflow_id
from workflows.order import order_workflow_id
from workflows.returns import return_workflow_id

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
RECORD = os.environ.get("OMS_RECORD_HISTORIES") == "1"
APPROVERS = ("hist-ann", "hist-ben")
ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED

Scenario = Callable[[Stack], Awaitable[str]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


async def approvers(stack: Stack) -> None:
    for name in APPROVERS:
        if name not in stack.keys:
            await stack.add_key(name, "approver")


async def credit_check_channel(stack: Stack) -> str:
    """A channel whose every order waits for hist-ann's `credit` approval."""
    await approvers(stack)
    return await stack.make_channel(
        "hist", approval_reasons=[{"reason": "credit", "rank": 1, "approvers": ["hist-ann"]}]
    )


async def place(
    stack: Stack,
    *,
    channel: str = "web",
    stock: list[tuple[str, int]] | None = None,
    quantity: int = 2,
    **body: Any,
) -> tuple[str, str]:
    sku = unique_sku()
    if stock:
        await stack.set_stock([(loc, sku, qty) for loc, qty in stock])
    order_id = await stack.create_order(
        order_body(channel=channel, sku=sku, quantity=quantity, **body), key="ops"
    )
    return order_id, sku


async def decide(stack: Stack, order_id: str, reason: str, who: str, decision: str) -> None:
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key=who,
        json={"reason": reason, "decision": decision, "comment": "history"},
    )
    assert status == 200, body


async def cancel(stack: Stack, order_id: str, **body: Any) -> dict[str, Any]:
    status, answer = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": "history", **body}
    )
    assert status == 200, answer
    return dict(answer)


async def deliver_all(stack: Stack, order_id: str, location: str, picked: int = 2) -> None:
    key = await stack.current_shipment(order_id, location)
    await stack.fulfil(key, location, {"1": picked})


async def delivered(stack: Stack) -> str:
    """The plain path: one line stocked in Berlin, picked, shipped and delivered."""
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 5)])
    await deliver_all(stack, order_id, "WH-BERLIN")
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


# ---------------------------------------------------------------------------- paths
@scenario("approval_ranks")
async def approval_ranks(stack: Stack) -> str:
    await approvers(stack)
    channel = await stack.make_channel(
        "hist",
        approval_reasons=[
            {"reason": "credit", "rank": 1, "approvers": ["hist-ann"]},
            {"reason": "margin", "rank": 2, "approvers": ["hist-ben"]},
        ],
    )
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    await decide(stack, order_id, "credit", "hist-ann", "approve")
    await decide(stack, order_id, "margin", "hist-ben", "approve")
    await deliver_all(stack, order_id, "WH-BERLIN")
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


@scenario("approval_decline")
async def approval_decline(stack: Stack) -> str:
    channel = await credit_check_channel(stack)
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    await decide(stack, order_id, "credit", "hist-ann", "decline")
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("approval_timeout")
async def approval_timeout(stack: Stack) -> str:
    await approvers(stack)
    channel = await stack.make_channel(
        "hist",
        approval_reasons=[
            {
                "reason": "credit",
                "rank": 1,
                "approvers": ["hist-ann"],
                "timeout_seconds": 1,
                "timeout_action": "escalate",
                "escalate_to": ["hist-ben"],
            },
            {"reason": "margin", "rank": 2, "approvers": ["hist-ben"], "timeout_seconds": 1},
        ],
    )
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
    # escalated after 1 s, then timed out after 1 s more: declined by the timeout
    await stack.wait_for(
        order_id,
        lambda v: any(a["escalated"] for a in v["approvals"]),
        "credit escalated",
    )
    await decide(stack, order_id, "credit", "hist-ben", "approve")
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("backorder_rerelease")
async def backorder_rerelease(stack: Stack) -> str:
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 2), ("WH-MUNICH", 2)])
    first = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.pick(first, "WH-BERLIN", {"1": 0})
    await deliver_all(stack, order_id, "WH-MUNICH")
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


@scenario("backorder_exhausted")
async def backorder_exhausted(stack: Stack) -> str:
    channel = await stack.make_channel("hist", backorder_retry_seconds=1, backorder_max_attempts=1)
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
    first = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.pick(first, "WH-BERLIN", {"1": 1})
    view = await stack.wait_for(
        order_id,
        lambda v: v["lines"][0]["cancelled_quantity"] == 1 and bool(v["returns"]),
        "the backordered unit cancelled by the channel's limit, with its return",
    )
    assert [r["lines"] for r in view["returns"]] == [[{"line_id": "1", "quantity": 1}]]
    for action, body in (("ship", {"carrier": "DHL", "tracking_number": "T-1"}), ("deliver", {})):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{first}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, (action, answer)
    await stack.wait_for(
        order_id, lambda v: v["status"] == "DELIVERED", "the picked unit delivered"
    )
    return order_id


@scenario("not_announced_assignment")
async def not_announced_assignment(stack: Stack) -> str:
    order_id, sku = await place(stack)
    await stack.wait_status(order_id, "NOT_ANNOUNCED")
    await stack.set_stock([("WH-MUNICH", sku, 2)])
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/assignments",
        key="ops",
        json={"assignments": [{"line_id": "1", "location_id": "WH-MUNICH"}]},
    )
    assert status == 200, body
    await deliver_all(stack, order_id, "WH-MUNICH")
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


@scenario("cancel_on_hold")
async def cancel_on_hold(stack: Stack) -> str:
    body = order_body()
    body["payment"]["amount"] = "1.00"
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 2)], payment=body["payment"])
    await stack.wait_status(order_id, "ON_HOLD")
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_not_announced")
async def cancel_not_announced(stack: Stack) -> str:
    order_id, _ = await place(stack)
    await stack.wait_status(order_id, "NOT_ANNOUNCED")
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_check_announced")
async def cancel_check_announced(stack: Stack) -> str:
    channel = await stack.make_channel("hist", max_distance_km=500)
    order_id, _ = await place(stack, channel=channel, stock=[("WH-LONDON", 2)])
    await stack.wait_status(order_id, "CHECK_ANNOUNCED")
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_awaiting_approval")
async def cancel_awaiting_approval(stack: Stack) -> str:
    channel = await credit_check_channel(stack)
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_released")
async def cancel_released(stack: Stack) -> str:
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 2)])
    await stack.current_shipment(order_id, "WH-BERLIN")
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_picked")
async def cancel_picked(stack: Stack) -> str:
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 2)])
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.pick(key, "WH-BERLIN", {"1": 2})
    await cancel(stack, order_id)
    await stack.wait_status(order_id, "CANCELLED")
    return order_id


@scenario("cancel_partial")
async def cancel_partial(stack: Stack) -> str:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 4)])
    body = order_body(sku=sku, quantity=2)
    body["lines"].append({"line_id": "2", "sku": sku, "quantity": 2, "unit_price": "19.99"})
    body["payment"]["amount"] = "79.96"
    order_id = await stack.create_order(body, key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    await cancel(stack, order_id, line_ids=["2"])
    await stack.wait_for(
        order_id, lambda v: v["lines"][1]["status"] == "CANCELLED", "line 2 cancelled"
    )
    await stack.fulfil(key, "WH-BERLIN", {"1": 2})
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


@scenario("cancel_through_temporal")
async def cancel_through_temporal(stack: Stack) -> str:
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 2)])
    await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.client.get_workflow_handle(order_workflow_id(order_id)).cancel()
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["returns"][0]["type"] == "CANCEL"
    return order_id


async def _cancel_in_stage(stack: Stack, activity_name: str, status: str) -> str:
    """Hold the order inside the stage whose activity this is, cancel, let it go on."""
    async with private_stack(stack) as own:
        gate = Gate()
        async with gated_worker(own, {activity_name: gate}):
            order_id, _ = await place(own, stock=[("WH-BERLIN", 2)])
            await asyncio.wait_for(gate.arrived.wait(), 30)
            await own.wait_status(order_id, status)
            # the cancel is accepted while the stage's activity is held; the stage then
            # finishes its activity and must not carry the order on
            cancelling = asyncio.create_task(cancel(own, order_id))
            await wait_history(
                own,
                order_workflow_id(order_id),
                lambda events: count(events, ACCEPTED) > 0,
                "the cancel accepted",
            )
            gate.open()
            await cancelling
            await own.wait_status(order_id, "CANCELLED")
            await settle_workflows(own, order_id)
        return order_id


async def settle_workflows(own: Stack, order_id: str) -> None:
    handle = own.client.get_workflow_handle(order_workflow_id(order_id))
    await asyncio.wait_for(handle.result(), 30)


@scenario("cancel_validating")
async def cancel_validating(stack: Stack) -> str:
    return await _cancel_in_stage(stack, "validate_order", "VALIDATING")


@scenario("cancel_routing")
async def cancel_routing(stack: Stack) -> str:
    return await _cancel_in_stage(stack, "route_order", "ROUTING")


@asynccontextmanager
async def web_shop(answers: list[int]) -> AsyncIterator[str]:
    """A web shop's callback answering `answers` in turn (the last one from then on)."""

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_post("/callback", callback)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/callback"))
    finally:
        await server.close()


async def _stage_fails_then_resumed(stack: Stack, answers: list[int], shown: str) -> str:
    async with web_shop(answers) as url:
        channel = await stack.make_channel("hist", callback_url=url, stage_attempts_before_alert=2)
        order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 2)])
        await stack.wait_for(order_id, lambda v: any(shown in r for r in v["hold_reasons"]), shown)
        status, body = await stack.call(
            "POST", f"/v1/orders/{order_id}/resume", key="ops", json={"comment": "fixed"}
        )
        assert status == 200, body
        await deliver_all(stack, order_id, "WH-BERLIN")
        await stack.wait_status(order_id, "DELIVERED")
    return order_id


@scenario("stage_refused")
async def stage_refused(stack: Stack) -> str:
    """The web shop refuses the order response (ON_HOLD), is fixed, the order resumed."""
    return await _stage_fails_then_resumed(stack, [404, 200], "response: ")


@scenario("stage_failing")
async def stage_failing(stack: Stack) -> str:
    """The web shop fails (503) long enough to be shown, then recovers on resume."""
    return await _stage_fails_then_resumed(stack, [503, 503, 200], "response failing")


async def returned(stack: Stack, order_id: str) -> dict[str, Any]:
    status, created = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/returns",
        key="ops",
        json={"lines": [{"line_id": "1", "quantity": 1}], "reason_code": "changed_mind"},
    )
    assert status == 201, created
    return dict(created)


@scenario("returned")
async def returned_path(stack: Stack) -> str:
    """Delivered, then both units come back in two returns: one restocked, one discarded."""
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 5)])
    await deliver_all(stack, order_id, "WH-BERLIN")
    await stack.wait_status(order_id, "DELIVERED")
    for condition in ("new", "damaged"):
        created = await returned(stack, order_id)
        status, outcome = await stack.call(
            "POST",
            f"/v1/returns/{created['return_id']}/receive",
            key="ops",
            json={"lines": [{"line_id": "1", "quantity": 1, "condition": condition}]},
        )
        assert status == 200, outcome
    await stack.wait_status(order_id, "RETURNED")
    return order_id


@scenario("return_to_vendor")
async def return_to_vendor(stack: Stack) -> str:
    """A defective unit comes back: kept for the vendor with a RETURN_TO_VENDOR work order."""
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 5)], quantity=1)
    await deliver_all(stack, order_id, "WH-BERLIN", picked=1)
    await stack.wait_status(order_id, "DELIVERED")
    created = await returned(stack, order_id)
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{created['return_id']}/receive",
        key="ops",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "defective"}]},
    )
    assert status == 200 and outcome["received"][0]["disposition"] == "RETURN_TO_VENDOR"
    await stack.wait_status(order_id, "RETURNED")
    return order_id


@scenario("return_expired")
async def return_expired(stack: Stack) -> str:
    """A return nobody receives before its deadline expires; the order stays DELIVERED."""
    channel = await stack.make_channel("hist", return_expiry_days=0.00002)  # about 1.7 s
    order_id, _ = await place(stack, channel=channel, stock=[("WH-BERLIN", 5)])
    await deliver_all(stack, order_id, "WH-BERLIN")
    await stack.wait_status(order_id, "DELIVERED")
    await returned(stack, order_id)
    await stack.wait_for(
        order_id,
        lambda v: bool(v["returns"]) and v["returns"][0]["status"] == "EXPIRED",
        "the return expired",
    )
    return order_id


@scenario("tracked")
async def tracked(stack: Stack) -> str:
    """Shipped, then tracking events: in transit, and a delivery that delivers it."""
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 5)])
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for action, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 2}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "T-1"}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, answer
    events = [
        {"event_id": "t1", "status": "IN_TRANSIT", "at": "2026-11-20T08:00:00Z"},
        {"event_id": "t2", "status": "DELIVERED", "at": "2026-11-20T12:00:00Z"},
    ]
    status, answer = await stack.call(
        "POST", f"/v1/shipments/{key}/tracking", key="WH-BERLIN", json={"events": events}
    )
    assert status == 200, answer
    await stack.wait_status(order_id, "DELIVERED")
    await stack.wait_for(
        order_id,
        lambda v: sum(e["type"].startswith("tracking_") for e in v["events"]) == 2,
        "both tracking events in the order",
    )
    return order_id


@scenario("returned_to_sender")
async def returned_to_sender(stack: Stack) -> str:
    """Shipped, three failed deliveries: back to its location, received, completed."""
    order_id, _ = await place(stack, stock=[("WH-BERLIN", 5)])
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for action, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 2}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "T-2"}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=body
        )
        assert status == 200, answer
    events = [
        {"event_id": f"f{n}", "status": "DELIVERY_FAILED", "at": f"2026-11-2{n}T09:00:00Z"}
        for n in (1, 2, 3)
    ]
    status, answer = await stack.call(
        "POST", f"/v1/shipments/{key}/tracking", key="WH-BERLIN", json={"events": events}
    )
    assert status == 200, answer
    view = await stack.wait_for(
        order_id,
        lambda v: v["status"] == "RETURNED" and bool(v["returns"]),
        "the order RETURNED with its return to sender",
    )
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{view['returns'][0]['return_id']}/receive",
        key="ops",
        json={"lines": [{"line_id": "1", "quantity": 2, "condition": "new"}]},
    )
    assert status == 200, outcome
    await stack.wait_status(order_id, "COMPLETED")
    return order_id


@scenario("cancel_in_flight")
async def cancel_in_flight(stack: Stack) -> str:
    """Line 1 back to sender and received; line 2, still at Munich, cancelled: Munich's
    confirmation settles the last line while the cancel is in flight, and the cancel
    decides how the order ends (patch oms-7001-cancel-in-flight): RETURNED once its
    CANCEL return is recorded, then COMPLETED."""
    first, second = unique_sku(), unique_sku()
    await stack.set_stock([("WH-BERLIN", first, 1), ("WH-MUNICH", second, 2)])
    body = order_body(sku=first, quantity=1, price="10.00")
    body["lines"].append({"line_id": "2", "sku": second, "quantity": 2, "unit_price": "10.00"})
    body["payment"]["amount"] = "30.00"
    order_id = await stack.create_order(body, key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.current_shipment(order_id, "WH-MUNICH")
    events = [
        {"event_id": f"f{n}", "status": "DELIVERY_FAILED", "at": f"2026-11-2{n}T09:00:00Z"}
        for n in (1, 2, 3)
    ]
    for action, payload in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 1}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "T-4"}),
        ("tracking", {"events": events}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{key}/{action}", key="WH-BERLIN", json=payload
        )
        assert status == 200, answer
    view = await stack.wait_for(order_id, lambda v: bool(v["returns"]), "line 1's return to sender")
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{view['returns'][0]['return_id']}/receive",
        key="ops",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "new"}]},
    )
    assert status == 200, outcome
    await stack.wait_for(
        order_id,
        lambda v: [r["status"] for r in v["returns"]] == ["RECEIVED"],
        "the return to sender received",
    )
    await cancel(stack, order_id, line_ids=["2"])
    await stack.wait_status(order_id, "COMPLETED")
    await wait_history(
        stack,
        order_workflow_id(order_id),
        lambda h: h[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        "the order closed",
    )
    return order_id


@scenario("delivered_in_fewer_round_trips")
async def delivered_in_fewer_round_trips(stack: Stack) -> str:
    """The plain path once the order coalesces its projections and search attributes per
    workflow task and its release stops waiting for each signal's delivery (patch
    oms-13-round-trips)."""
    return await delivered(stack)


@scenario("delivered_on_one_patch_marker")
async def delivered_on_one_patch_marker(stack: Stack) -> str:
    """The plain path of an order that takes every change to issue 13 on one patch marker
    (oms-13-baseline) instead of one per change."""
    return await delivered(stack)


@scenario("progress_from_activities")
async def progress_from_activities(stack: Stack) -> str:
    """The plain path once each step's activity signals the order (patch
    oms-13-progress-from-activities): the release sends no signal itself."""
    return await delivered(stack)


@scenario("local_steps")
async def local_steps(stack: Stack) -> str:
    """The plain path once a release's steps are local activities in the workflow task
    that takes the store's report (patch oms-13-local-steps)."""
    return await delivered(stack)


@scenario("local_steps_cancel_picked")
async def local_steps_cancel_picked(stack: Stack) -> str:
    """A picked release cancelled once its steps are local activities: the cancel's store
    write runs in the workflow task that takes the order's cancel_lines signal."""
    return await cancel_picked(stack)


@scenario("releases_at_submission")
async def releases_at_submission(stack: Stack) -> str:
    """The plain path once submit_work_orders writes the release and the order records it
    as it starts the release's workflow (patch oms-13-releases-at-submission)."""
    return await delivered(stack)


@scenario("releases_at_submission_rerelease")
async def releases_at_submission_rerelease(stack: Stack) -> str:
    """Backordered units re-released from another location once each release is written
    at its submission (patch oms-13-releases-at-submission)."""
    return await backorder_rerelease(stack)


@scenario("transferred")
async def transferred(stack: Stack) -> str:
    """Click and collect from a warehouse: transfer picked, shipped, received at the
    pickup store, handed over."""
    order_id, _ = await place(
        stack,
        stock=[("WH-BERLIN", 5)],
        delivery={"type": "pickup", "pickup_location_id": "ST-HAMBURG"},
    )
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    for who, shipment, action, body in (
        ("WH-BERLIN", key, "pick", {"lines": [{"line_id": "1", "picked_quantity": 2}]}),
        ("WH-BERLIN", key, "ship", {"carrier": "DHL", "tracking_number": "T-3"}),
        ("ST-HAMBURG", f"{key}-H", "receive", {}),
        ("ST-HAMBURG", f"{key}-H", "deliver", {}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/shipments/{shipment}/{action}", key=who, json=body
        )
        assert status == 200, answer
    await stack.wait_status(order_id, "DELIVERED")
    return order_id


# ---------------------------------------------------------------------------- record
async def histories_of(stack: Stack, order_id: str) -> dict[str, WorkflowHistory]:
    """The order's history and each of its releases'."""
    found: dict[str, WorkflowHistory] = {}
    order = stack.client.get_workflow_handle(order_workflow_id(order_id))
    found["order"] = await order.fetch_history()
    seq = 1
    while True:
        handle = stack.client.get_workflow_handle(fulfillment_workflow_id(order_id, seq))
        try:
            await handle.describe()
        except Exception:
            break
        found[f"release{seq}"] = await handle.fetch_history()
        seq += 1
    seq = 1
    while True:
        handle = stack.client.get_workflow_handle(return_workflow_id(order_id, seq))
        try:
            await handle.describe()
        except Exception:
            break
        found[f"return{seq}"] = await handle.fetch_history()
        seq += 1
    return found


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_lifecycle_path_replays(stack: Stack, name: str) -> None:
    order_id = await SCENARIOS[name](stack)
    # let the workflows finish their current task, so the history ends on a whole task
    await asyncio.sleep(0)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=stack.client.data_converter)
    for label, history in (await histories_of(stack, order_id)).items():
        await replayer.replay_workflow(history)
        if RECORD and stack.backend == "sqlite":
            (HISTORIES / f"{name}_{label}.json").write_text(history.to_json())
