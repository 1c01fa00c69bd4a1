"""Approval engine: parallel within a rank, sequential across ranks, rules, timeouts,
escalation, signals and updates, re-routing after approval, third-party webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from oms import webhooks
from tests.integration.conftest import Stack, order_body, unique_sku
from workflows.model import ApprovalDecisionInput

APPROVERS = ("ann", "ben", "cid", "dee")


async def channel_with(stack: Stack, reasons: list[dict[str, Any]]) -> str:
    """A fresh sales channel with these approval reasons, and keys for the approvers."""
    channel_id = await stack.make_channel("ap", approval_reasons=reasons)
    for name in APPROVERS:
        if name not in stack.keys:
            await stack.add_key(name, "approver")
    return channel_id


async def start(
    stack: Stack,
    channel: str,
    *,
    sku: str | None = None,
    quantity: int = 1,
    stock: list[tuple[str, int]] | None = None,
    **order: Any,
) -> str:
    sku = sku or unique_sku()
    await stack.set_stock([(loc, sku, qty) for loc, qty in (stock or [("WH-BERLIN", 5)])])
    return await stack.create_order(
        order_body(channel=channel, sku=sku, quantity=quantity, **order), key="ops"
    )


async def decide(
    stack: Stack, order_id: str, who: str, reason: str, decision: str, comment: str | None = None
) -> tuple[int, Any]:
    return await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key=who,
        json={"reason": reason, "decision": decision, "comment": comment},
    )


def statuses(view: dict[str, Any]) -> dict[str, str]:
    return {a["reason"]: a["status"] for a in view["approvals"]}


async def test_same_rank_both_approve(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {"reason": "credit", "rank": 1, "approvers": ["ann"]},
            {"reason": "margin", "rank": 1, "approvers": ["ben"]},
        ],
    )
    order_id = await start(stack, channel)
    view = await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert statuses(view) == {"credit": "pending", "margin": "pending"}
    status, result = await decide(stack, order_id, "ann", "credit", "approve")
    assert status == 200 and result["status"] == "AWAITING_APPROVAL"
    status, result = await decide(stack, order_id, "ben", "margin", "approve", "fine")
    assert status == 200
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert statuses(view) == {"credit": "approved", "margin": "approved"}
    assert "status_approved" in [e["type"] for e in view["events"]]


async def test_same_rank_one_declines(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {"reason": "credit", "rank": 1, "approvers": ["ann"]},
            {"reason": "margin", "rank": 1, "approvers": ["ben"]},
        ],
    )
    sku = unique_sku()
    order_id = await start(stack, channel, sku=sku, quantity=2, stock=[("WH-BERLIN", 2)])
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert await stack.atp(sku) == {"WH-BERLIN": 0}
    status, _ = await decide(stack, order_id, "ben", "margin", "decline", "margin too low")
    assert status == 200
    view = await stack.wait_status(order_id, "CANCELLED")
    assert statuses(view) == {"credit": "withdrawn", "margin": "declined"}
    margin = next(a for a in view["approvals"] if a["reason"] == "margin")
    assert (margin["decided_by"], margin["comment"]) == ("ben", "margin too low")
    assert "margin too low" in view["returns"][0]["reason"]
    assert await stack.atp(sku) == {"WH-BERLIN": 2}
    status, pending = await stack.call("GET", "/v1/approvals?status=pending", key="ann")
    assert order_id not in [p["order_id"] for p in pending["approvals"]]
    # the withdrawn request can no longer be decided (the order is closed)
    status, err = await decide(stack, order_id, "ann", "credit", "approve")
    assert status == 409 and err["error"]["code"] == "not_pending"


async def test_ranks_are_sequential(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {"reason": "manager", "rank": 1, "approvers": ["ann"]},
            {"reason": "director", "rank": 2, "approvers": ["cid"]},
        ],
    )
    order_id = await start(stack, channel)
    view = await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert statuses(view) == {"manager": "pending", "director": "waiting"}
    status, pending = await stack.call("GET", "/v1/approvals?status=pending", key="cid")
    assert order_id not in [p["order_id"] for p in pending["approvals"]]

    status, err = await decide(stack, order_id, "cid", "director", "approve")
    assert status == 409 and err["error"]["code"] == "not_pending"
    status, _ = await decide(stack, order_id, "ann", "manager", "approve")
    assert status == 200
    await stack.wait_for(
        order_id, lambda v: statuses(v)["director"] == "pending", "rank 2 requested"
    )
    status, pending = await stack.call("GET", "/v1/approvals?status=pending", key="cid")
    assert order_id in [p["order_id"] for p in pending["approvals"]]
    status, result = await decide(stack, order_id, "cid", "director", "approve")
    assert status == 200, result
    await stack.wait_status(order_id, "IN_FULFILLMENT")


async def test_reason_whose_rule_does_not_match_is_skipped(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {
                "reason": "big-order",
                "rank": 1,
                "approvers": ["ann"],
                "rule": {"conditions": [{"field": "order_total", "op": "gt", "value": "1000"}]},
            },
            {
                "reason": "invoice",
                "rank": 1,
                "approvers": ["ben"],
                "rule": {
                    "conditions": [{"field": "payment_method", "op": "eq", "value": "invoice"}]
                },
            },
        ],
    )
    small = await start(stack, channel, quantity=1, price="10.00")
    view = await stack.wait_status(small, "IN_FULFILLMENT")
    assert statuses(view) == {"big-order": "skipped", "invoice": "skipped"}

    big = await start(stack, channel, quantity=1, price="2000.00")
    view = await stack.wait_status(big, "AWAITING_APPROVAL")
    assert statuses(view) == {"big-order": "pending", "invoice": "skipped"}


async def test_wrong_approver_repeat_and_conflicting_decisions(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {"reason": "credit", "rank": 1, "approvers": ["ann"]},
            {"reason": "margin", "rank": 1, "approvers": ["ben"]},
        ],
    )
    order_id = await start(stack, channel)
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    status, err = await decide(stack, order_id, "ben", "credit", "approve")
    assert status == 403 and err["error"]["code"] == "not_an_approver"
    status, err = await decide(stack, order_id, "ann", "nope", "approve")
    assert status == 404 and err["error"]["code"] == "approval_reason_not_found"
    status, err = await stack.call(
        "POST",
        "/v1/orders/NO-SUCH/approvals",
        key="ann",
        json={"reason": "credit", "decision": "approve"},
    )
    assert status == 404 and err["error"]["code"] == "order_not_found"

    assert (await decide(stack, order_id, "ann", "credit", "approve"))[0] == 200
    assert (await decide(stack, order_id, "ann", "credit", "approve"))[0] == 200
    status, err = await decide(stack, order_id, "ann", "credit", "decline")
    assert status == 409 and err["error"]["code"] == "not_pending"
    view = await stack.order(order_id)
    assert [e["type"] for e in view["events"]].count("approval_approved") == 1
    assert statuses(view) == {"credit": "approved", "margin": "pending"}


async def test_timeout_declines(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {
                "reason": "credit",
                "rank": 1,
                "approvers": ["ann"],
                "timeout_seconds": 1,
                "timeout_action": "decline",
            }
        ],
    )
    order_id = await start(stack, channel)
    view = await stack.wait_status(order_id, "CANCELLED")
    assert statuses(view) == {"credit": "timed_out"}
    assert "approval_timed_out" in [e["type"] for e in view["events"]]


async def test_timeout_escalates_to_other_approvers(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [
            {
                "reason": "credit",
                "rank": 1,
                "approvers": ["ann"],
                "timeout_seconds": 1,
                "timeout_action": "escalate",
                "escalate_to": ["dee"],
            }
        ],
    )
    order_id = await start(stack, channel)
    view = await stack.wait_for(
        order_id, lambda v: "approval_escalated" in [e["type"] for e in v["events"]], "escalation"
    )
    assert view["approvals"][0]["approvers"] == ["ann", "dee"]
    assert view["status"] == "AWAITING_APPROVAL"
    status, result = await decide(stack, order_id, "dee", "credit", "approve", "covering")
    assert status == 200, result
    await stack.wait_status(order_id, "IN_FULFILLMENT")


async def test_decision_by_signal_counts_like_the_api(stack: Stack) -> None:
    channel = await channel_with(stack, [{"reason": "credit", "rank": 1, "approvers": ["ann"]}])
    order_id = await start(stack, channel)
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    await handle.signal(
        "approval_decision",
        ApprovalDecisionInput(
            reason="credit", decision="approve", approver="ann", comment="via CLI"
        ),
    )
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["approvals"][0]["decided_by"] == "ann"
    assert view["approvals"][0]["comment"] == "via CLI"
    # a signal from someone who is not an approver is ignored, and the trail says so
    other = await start(stack, channel)
    await stack.wait_status(other, "AWAITING_APPROVAL")
    await stack.client.get_workflow_handle(f"order-{other}").signal(
        "approval_decision",
        ApprovalDecisionInput(reason="credit", decision="approve", approver="mallory"),
    )
    view = await stack.wait_for(
        other,
        lambda v: "approval_decision_ignored" in [e["type"] for e in v["events"]],
        "ignored signal in the audit trail",
    )
    assert view["status"] == "AWAITING_APPROVAL"


async def test_reroute_after_approval_when_stock_moved(stack: Stack) -> None:
    channel = await channel_with(
        stack,
        [{"reason": "credit", "rank": 1, "approvers": ["ann"], "reroute_after_approval": True}],
    )
    sku = unique_sku()
    order_id = await start(
        stack, channel, sku=sku, quantity=2, stock=[("WH-BERLIN", 2), ("WH-MUNICH", 5)]
    )
    view = await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert view["lines"][0]["location_id"] == "WH-BERLIN"
    # Berlin's count drops to nothing while the order waits
    await stack.set_stock([("WH-BERLIN", sku, 0)])
    assert (await decide(stack, order_id, "ann", "credit", "approve"))[0] == 200
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "WH-MUNICH"
    assert [r["location_id"] for r in view["routing"]] == ["WH-BERLIN", "WH-MUNICH"]
    assert await stack.atp(sku) == {"WH-BERLIN": 0, "WH-MUNICH": 3}


async def test_third_party_system_gets_signed_requests(stack: Stack) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        arrived.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/approvals", hook)
    server = TestServer(app)
    await server.start_server()
    try:
        reason = {
            "reason": "credit",
            "rank": 1,
            "approvers": ["ann"],
            "webhook_url": str(server.make_url("/approvals")),
        }
        channel = await channel_with(stack, [])
        status, answer = await stack.call(
            "PUT",
            "/v1/sales-channels",
            json=[{"channel_id": channel, "approval_reasons": [reason]}],
        )
        assert status == 200, answer
        # the receiver's own secret, shown in this answer only
        (made,) = answer["secrets"]
        assert made["channel_id"] == channel and made["reason"] == "credit"
        assert made["receiver"] == "approval"
        secret = made["secret"]
        order_id = await start(stack, channel)
        await asyncio.wait_for(arrived.wait(), timeout=30)
        headers, body = received[0]
        assert webhooks.verify(secret, headers["X-OMS-Signature"], body)
        assert not webhooks.verify(stack.settings.webhook_secret, headers["X-OMS-Signature"], body)
        assert headers["Idempotency-Key"] == f"{order_id}-credit-request"
        assert b'"approval_request"' in body and order_id.encode() in body
    finally:
        await server.close()


async def test_decline_is_not_held_back_by_a_failing_approval_system(stack: Stack) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/approvals", broken)
    server = TestServer(app)
    await server.start_server()
    try:
        channel = await channel_with(
            stack,
            [
                {
                    "reason": "credit",
                    "rank": 1,
                    "approvers": ["ann"],
                    "webhook_url": str(server.make_url("/approvals")),
                },
                {
                    "reason": "margin",
                    "rank": 1,
                    "approvers": ["ben"],
                    "webhook_url": str(server.make_url("/approvals")),
                },
            ],
        )
        sku = unique_sku()
        order_id = await start(stack, channel, sku=sku, quantity=1, stock=[("WH-BERLIN", 1)])
        await stack.wait_status(order_id, "AWAITING_APPROVAL")
        status, _ = await decide(stack, order_id, "ann", "credit", "decline", "no")
        assert status == 200
        view = await stack.wait_status(order_id, "CANCELLED")
        assert statuses(view) == {"credit": "declined", "margin": "withdrawn"}
        assert await stack.atp(sku) == {"WH-BERLIN": 1}
    finally:
        await server.close()


async def test_repeating_a_decision_after_the_order_closed_is_accepted(stack: Stack) -> None:
    channel = await channel_with(stack, [{"reason": "credit", "rank": 1, "approvers": ["ann"]}])
    order_id = await start(stack, channel)
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert (await decide(stack, order_id, "ann", "credit", "decline"))[0] == 200
    await stack.wait_status(order_id, "CANCELLED")
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    await handle.result()  # the workflow has closed
    status, body = await decide(stack, order_id, "ann", "credit", "decline")
    assert status == 200 and body["approvals"][0]["status"] == "declined"
    status, err = await decide(stack, order_id, "ann", "credit", "approve")
    assert status == 409 and err["error"]["code"] == "not_pending"
