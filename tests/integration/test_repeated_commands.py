"""Commands a client repeats (a lost answer, a timeout, a nervous user) change nothing
the second time and get a sensible answer; big numbers never turn into a 500."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.conftest import Stack, order_body, unique_sku


async def test_a_pick_retried_with_its_idempotency_key_gets_the_first_answer(
    stack: Stack,
) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    pick = {"lines": [{"line_id": "1", "picked_quantity": 2}]}
    headers = {
        "Authorization": f"Bearer {stack.keys['WH-BERLIN']}",
        # made from the shipment key, as clients do: it has the order id's "@"
        "Idempotency-Key": f"{key}.pick.{uuid.uuid4().hex[:8]}",
    }
    assert "@" in headers["Idempotency-Key"]
    answers = []
    for _ in range(2):
        resp = await stack.http.post(f"/v1/shipments/{key}/pick", json=pick, headers=headers)
        answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and answers[0][1]["status"] == "PICKED"
    # without the key, the same report again is refused: it was reported already
    status, body = await stack.call("POST", f"/v1/shipments/{key}/pick", key="WH-BERLIN", json=pick)
    assert (status, body["error"]["code"]) == (409, "not_pending")
    view = await stack.wait_for(
        order_id,
        lambda v: any(e["type"] == "shipment_picked" for e in v["events"]),
        "the pick reported to the order",
    )
    assert [e["type"] for e in view["events"]].count("shipment_picked") == 1


async def test_a_malformed_idempotency_key_is_refused(stack: Stack) -> None:
    order_id = await stack.create_order(order_body(sku=unique_sku()))
    resp = await stack.http.post(
        f"/v1/orders/{order_id}/cancel",
        json={"reason": "x"},
        headers={"Authorization": f"Bearer {stack.keys['ops']}", "Idempotency-Key": "a b"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_idempotency_key"


async def test_a_cancel_repeated_after_the_order_closed_answers_like_the_first(
    stack: Stack,
) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.current_shipment(order_id, "WH-BERLIN")
    first, second = await asyncio.gather(
        stack.call("POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "a"}),
        stack.call("POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "a"}),
    )
    assert first[0] == 200 and second[0] == 200, (first, second)
    view = await stack.wait_status(order_id, "CANCELLED")
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "again"}
    )
    assert (status, body["status"]) == (200, "CANCELLED")
    # one return for the two units, stock back once
    assert [r["lines"] for r in view["returns"]] == [[{"line_id": "1", "quantity": 2}]]
    assert (await stack.atp(sku))["WH-BERLIN"] == 2


async def test_receipts_beyond_the_column_range_are_capped_not_a_500(stack: Stack) -> None:
    sku = unique_sku()
    for n in range(3):
        status, body = await stack.call(
            "POST",
            "/v1/inventory/adjustments",
            json=[
                {
                    "adjustment_id": f"big-{sku}-{n}",
                    "location_id": "WH-BERLIN",
                    "sku": sku,
                    "delta": 1_000_000_000,
                    "reason": "receipt",
                }
            ],
        )
        assert status == 200, body
    rows = await stack.store.inventory.stock([sku])
    assert [r.on_hand for r in rows] == [2_000_000_000]
