"""Bad input gets a clear 4xx with a machine-readable code, never a 500."""

from __future__ import annotations

from tests.integration.conftest import Stack, order_body


async def test_bad_order_body_gets_422_with_field_errors(stack: Stack) -> None:
    body = order_body()
    body["lines"][0]["quantity"] = 0
    body["payment"]["amount"] = "abc"
    del body["customer"]
    status, err = await stack.call("POST", "/v1/orders", key="web", json=body)
    assert status == 422
    assert err["error"]["code"] == "validation_error"
    fields = {d["field"] for d in err["error"]["details"]}
    assert {"lines.0.quantity", "payment.amount", "customer"} <= fields


async def test_malformed_json_gets_400(stack: Stack) -> None:
    resp = await stack.http.post(
        "/v1/orders", data=b"{not json", headers={"Authorization": "Bearer dev-web"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"


async def test_unknown_order_is_404(stack: Stack) -> None:
    status, err = await stack.call("GET", "/v1/orders/NOPE-404", key="ops")
    assert status == 404 and err["error"]["code"] == "order_not_found"
    status, err = await stack.call(
        "POST", "/v1/orders/NOPE-404/cancel", key="ops", json={"reason": "x"}
    )
    assert status == 404 and err["error"]["code"] == "order_not_found"


async def test_unknown_channel_and_foreign_channel(stack: Stack) -> None:
    status, err = await stack.call(
        "POST", "/v1/orders", key="admin", json=order_body(channel="nowhere")
    )
    assert status == 422 and err["error"]["details"][0]["field"] == "sales_channel"
    status, err = await stack.call("POST", "/v1/orders", key="web", json=order_body(channel="b2b"))
    assert status == 403 and err["error"]["code"] == "forbidden"


async def test_missing_or_unknown_key_is_401(stack: Stack) -> None:
    resp = await stack.http.get("/v1/orders/X")
    assert resp.status == 401
    resp = await stack.http.get("/v1/orders/X", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_unknown_shipment_and_bad_pick(stack: Stack) -> None:
    status, err = await stack.call(
        "POST",
        "/v1/shipments/NOPE/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 1}]},
    )
    assert status == 404 and err["error"]["code"] == "shipment_not_found"


async def test_inventory_for_unknown_location_is_422(stack: Stack) -> None:
    status, err = await stack.call(
        "PUT", "/v1/inventory", json=[{"location_id": "MARS", "sku": "X", "on_hand": 1}]
    )
    assert status == 422 and err["error"]["code"] == "unknown_location"
    status, err = await stack.call(
        "PUT", "/v1/inventory", json=[{"location_id": "WH-BERLIN", "sku": "X", "on_hand": -1}]
    )
    assert status == 422 and err["error"]["code"] == "validation_error"


async def test_health_and_openapi_are_public(stack: Stack) -> None:
    resp = await stack.http.get("/health")
    assert resp.status == 200
    resp = await stack.http.get("/openapi.json")
    doc = await resp.json()
    assert "/v1/orders" in doc["paths"] and "post" in doc["paths"]["/v1/orders"]
