"""Returns of delivered units (issue 10, point 1): a ReturnWorkflow per return, received
by the location with the units' condition, disposition per channel rules (discard: stock
unchanged, on the ledger; restock: stock up at the receiving location), a signed refund
notice to the channel's callback, the order RETURNED; returns beyond what was delivered
or after the window are refused; a return never received expires; a cancel's CANCEL
return is in the same list."""

from __future__ import annotations

import io
import uuid
from typing import Any

from pypdf import PdfReader

from oms import webhooks
from tests.integration.conftest import Callback, Stack, order_body, unique_sku
from tests.integration.gates import eventually


async def shop(stack: Stack, callback: Callback | None = None, **config: Any) -> tuple[str, str]:
    """A channel of its own with a web shop key; returns (channel, callback secret)."""
    channel = f"ret-{uuid.uuid4().hex[:8]}"
    if callback is not None:
        config["callback_url"] = callback.url()
    status, answer = await stack.call(
        "PUT", "/v1/sales-channels", json=[{"channel_id": channel, **config}]
    )
    assert status == 200, answer
    await stack.add_key(channel, "webshop", channel)
    secrets = [m["secret"] for m in answer.get("secrets", []) if m["receiver"] == "callback"]
    return channel, secrets[0] if secrets else ""


async def delivered(stack: Stack, channel: str, quantity: int = 2) -> tuple[str, str]:
    """An order of `quantity` units from WH-BERLIN, delivered; returns (order id, sku)."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=quantity))
    shipment = await stack.current_shipment(order_id, "WH-BERLIN")
    await stack.fulfil(shipment, "WH-BERLIN", {"1": quantity})
    await stack.wait_status(order_id, "DELIVERED")
    return order_id, sku


async def on_hand(stack: Stack, sku: str) -> int:
    rows = {r.location_id: r for r in await stack.store.inventory.stock([sku])}
    return rows["WH-BERLIN"].on_hand


async def ask_return(
    stack: Stack, channel: str, order_id: str, quantity: int, reason: str
) -> tuple[int, dict[str, Any]]:
    return await stack.call(
        "POST",
        f"/v1/orders/{order_id}/returns",
        key=channel,
        json={"lines": [{"line_id": "1", "quantity": quantity}], "reason_code": reason},
    )


async def test_a_return_is_received_disposed_and_refunded(stack: Stack, callback: Callback) -> None:
    channel, secret = await shop(stack, callback, return_shipping_fee="1.00")
    order_id, sku = await delivered(stack, channel)
    assert await on_hand(stack, sku) == 3  # 2 of 5 shipped

    status, body = await ask_return(stack, channel, order_id, 3, "changed_mind")
    assert (status, body["error"]["code"]) == (422, "exceeds_delivered"), body

    status, damaged = await ask_return(stack, channel, order_id, 1, "damaged")
    assert status == 201, damaged
    assert damaged["status"] == "OPEN" and damaged["location_id"] == "WH-BERLIN"
    assert damaged["return_id"] == f"{order_id}-RMA1"
    status, unwanted = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert status == 201, unwanted
    # both delivered units are on their way back: a third is refused
    status, body = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert (status, body["error"]["code"]) == (422, "exceeds_delivered"), body

    # the web shop hands the customer the return label: the return id as text and barcode
    async def label() -> bytes | None:
        response = await stack.http.get(
            damaged["documents"]["label"],
            headers={"Authorization": f"Bearer {stack.keys[channel]}"},
        )
        return await response.read() if response.status == 200 else None

    pdf = await eventually(label, "the return label")
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert damaged["return_id"] in page.extract_text()
    assert float(page.mediabox.width) == 288 and float(page.mediabox.height) == 432

    # the warehouse receives the damaged unit: discarded, stock unchanged
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{damaged['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "damaged"}]},
    )
    assert status == 200, outcome
    assert outcome["status"] == "RECEIVED" and outcome["refund_amount"] == "18.99"
    assert outcome["received"][0]["disposition"] == "DISCARD"
    assert await on_hand(stack, sku) == 3
    status, listed = await stack.call("GET", f"/v1/returns/{damaged['return_id']}", key="ops")
    assert status == 200
    assert [(d["disposition"], d["quantity"]) for d in listed["dispositions"]] == [("DISCARD", 1)]
    # received once: a second report is refused
    status, again = await stack.call(
        "POST",
        f"/v1/returns/{damaged['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 1}]},
    )
    assert (status, again["error"]["code"]) == (409, "return_closed"), again

    # the unwanted unit comes back as new: back in Berlin's stock, available again
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{unwanted['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "new"}]},
    )
    assert status == 200 and outcome["received"][0]["disposition"] == "RESTOCK", outcome
    assert await on_hand(stack, sku) == 4
    assert (await stack.atp(sku))["WH-BERLIN"] == 4

    # two refund notices, each signed with the channel's callback secret
    async def both() -> list[tuple[str, dict[str, Any], bytes]] | None:
        found = callback.refunds(order_id)
        return found if len(found) == 2 else None

    for header, message, raw in await eventually(both, "two refund notices"):
        assert webhooks.verify(secret, header, raw)
        assert message["amount"] == "18.99" and message["currency"] == "EUR"
        assert message["lines"] == [{"line_id": "1", "quantity": 1, "amount": "19.99"}]

    view = await stack.wait_status(order_id, "RETURNED")
    assert view["lines"][0]["returned_quantity"] == 2
    assert {r["status"] for r in view["returns"]} == {"RECEIVED"}
    status, page_ = await stack.call("GET", f"/v1/returns?order_id={order_id}", key=channel)
    assert status == 200 and page_["total"] == 2, page_
    # the location lists the returns it receives; another channel sees none of them
    status, mine = await stack.call("GET", f"/v1/returns?order_id={order_id}", key="WH-BERLIN")
    assert status == 200 and mine["total"] == 2
    status, theirs = await stack.call("GET", f"/v1/returns?order_id={order_id}", key="web")
    assert status == 200 and theirs["total"] == 0


async def test_no_return_after_the_window(stack: Stack) -> None:
    channel, _ = await shop(stack, return_window_days=0)
    order_id, _ = await delivered(stack, channel, quantity=1)
    await stack.wait_status(order_id, "COMPLETED")
    status, body = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert (status, body["error"]["code"]) == (409, "return_window_closed"), body


async def test_a_return_never_received_expires(stack: Stack) -> None:
    channel, _ = await shop(stack, return_expiry_days=0.00003)  # about 2.6 s
    order_id, sku = await delivered(stack, channel, quantity=1)
    status, created = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert status == 201, created

    async def expired() -> dict[str, Any] | None:
        status, found = await stack.call("GET", f"/v1/returns/{created['return_id']}", key="ops")
        return found if status == 200 and found["status"] == "EXPIRED" else None

    await eventually(expired, "the return expired")
    view = await stack.wait_for(
        order_id,
        lambda v: v["returns"] and v["returns"][0]["status"] == "EXPIRED",
        "the order sees the return expired",
    )
    assert view["status"] == "DELIVERED" and view["lines"][0]["returned_quantity"] == 0
    assert await on_hand(stack, sku) == 4
    # the unit is returnable again
    status, again = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert status == 201 and again["return_id"] == f"{order_id}-RMA2", again


async def test_a_cancel_is_a_return_of_type_cancel_in_the_same_list(stack: Stack) -> None:
    channel, _ = await shop(stack)
    sku = unique_sku()  # no stock anywhere: the order waits, nothing shipped
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1))
    await stack.wait_status(order_id, "NOT_ANNOUNCED", "CHECK_ANNOUNCED", "BACKORDERED")
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key=channel, json={"reason": "too slow"}
    )
    assert status == 200, body
    await stack.wait_status(order_id, "CANCELLED")

    async def listed() -> dict[str, Any] | None:
        status, page = await stack.call("GET", f"/v1/returns?order_id={order_id}", key=channel)
        return page if status == 200 and page["total"] == 1 else None

    page = await eventually(listed, "the CANCEL return listed")
    (entry,) = page["returns"]
    assert entry["type"] == "CANCEL" and entry["lines"] == [{"line_id": "1", "quantity": 1}]
    status, body = await ask_return(stack, channel, order_id, 1, "changed_mind")
    assert status == 409, body


async def test_a_defective_unit_goes_back_to_the_vendor(stack: Stack) -> None:
    channel, _ = await shop(stack)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1))
    shipment = await stack.current_shipment(order_id, "WH-BERLIN")
    # the PACKAGING work order's steps by its own id, as on its shipment
    work_order = shipment.replace(f"{order_id}-S", f"{order_id}-WO")
    for step, body in (
        ("pick", {"lines": [{"line_id": "1", "picked_quantity": 1}]}),
        ("ship", {"carrier": "DHL", "tracking_number": "JD0003"}),
        ("deliver", {}),
    ):
        status, answer = await stack.call(
            "POST", f"/v1/work-orders/{work_order}/{step}", key="WH-BERLIN", json=body
        )
        assert status == 200, (step, answer)
    await stack.wait_status(order_id, "DELIVERED")
    status, listed = await stack.call(
        "GET", "/v1/locations/WH-BERLIN/work-orders?status=DELIVERED", key="WH-BERLIN"
    )
    assert status == 200
    assert {w["kind"] for w in listed["work_orders"]} == {"PACKAGING"}

    status, created = await ask_return(stack, channel, order_id, 1, "defective")
    assert status == 201, created
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{created['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "defective"}]},
    )
    assert status == 200 and outcome["received"][0]["disposition"] == "RETURN_TO_VENDOR"
    assert await on_hand(stack, sku) == 4  # not back in stock

    # Berlin's list of units to send to the vendor
    path = "/v1/locations/WH-BERLIN/work-orders?kind=RETURN_TO_VENDOR"

    async def vendor_orders() -> list[dict[str, Any]] | None:
        status, page = await stack.call("GET", path, key="WH-BERLIN")
        assert status == 200, page
        mine = [w for w in page["work_orders"] if w["return_id"] == created["return_id"]]
        return mine or None

    (rtv,) = await eventually(vendor_orders, "the return-to-vendor work order")
    assert rtv["kind"] == "RETURN_TO_VENDOR" and rtv["status"] == "OPEN"
    assert rtv["items"] == [{"line_id": "1", "sku": sku, "quantity": 1}]
    ship = {"carrier": "UPS", "tracking_number": "1Z999"}
    rtv_path = f"/v1/work-orders/{rtv['work_order_id']}/ship"
    status, shipped = await stack.call("POST", rtv_path, key="WH-BERLIN", json=ship)
    assert status == 200 and shipped["status"] == "SHIPPED", shipped
    status, again = await stack.call("POST", rtv_path, key="WH-BERLIN", json=ship)
    assert status == 200 and again == shipped  # the same report again
    other = {"carrier": "UPS", "tracking_number": "1Z000"}
    status, refused = await stack.call("POST", rtv_path, key="WH-BERLIN", json=other)
    assert (status, refused["error"]["code"]) == (409, "not_pending"), refused
    # another location cannot touch it
    status, hidden = await stack.call("POST", rtv_path, key="WH-MUNICH", json=ship)
    assert status == 404, hidden
    status, page = await stack.call("GET", f"{path}&status=SHIPPED", key="WH-BERLIN")
    assert status == 200 and rtv["work_order_id"] in [
        w["work_order_id"] for w in page["work_orders"]
    ]
