"""Hostile HTTP, as an attacker sends it: JSON nested deeper or numbers longer than any
request needs, query parameters out of range or malformed, text no database compares,
numbers past a column's range, unknown fields, wrong methods. Every answer is a 4xx with
the error JSON and a code; none is a 500, none names the server software."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from tests.integration.conftest import Stack, order_body

ORDER_PATHS = ("/v1/orders", "/v1/locations", "/v1/sales-channels", "/v1/inventory")


async def raw(
    stack: Stack,
    method: str,
    path: str,
    data: bytes | str | None = None,
    *,
    key: str | None = "admin",
) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {stack.keys[key]}"
    resp = await stack.http.request(
        method,
        path,
        data=data.encode() if isinstance(data, str) else data,
        headers=headers,
    )
    text = await resp.text()
    body = json.loads(text) if "json" in resp.headers.get("Content-Type", "") else text
    return resp.status, dict(resp.headers), body


def error_code(status: int, body: Any) -> str:
    assert 400 <= status < 500, (status, body)
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


def nested(depth: int, leaf: str = "1") -> str:
    """A JSON array nested `depth` levels deep (objects and arrays alternating)."""
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if level % 2 == 0 else f'{{"k": {text}}}'
    return text


# --------------------------------------------------------------------------- JSON bodies


async def test_json_nested_past_32_levels_is_400_json_too_deep_on_every_body(
    stack: Stack,
) -> None:
    for method, path in [
        ("POST", "/v1/orders"),
        ("PUT", "/v1/locations"),
        ("PUT", "/v1/sales-channels"),
        ("PUT", "/v1/inventory"),
        ("POST", "/v1/inventory/adjustments"),
    ]:
        for depth in (33, 1_000, 100_000):
            status, _, body = await raw(stack, method, path, nested(depth))
            assert error_code(status, body) == "json_too_deep", (method, path, depth, body)
            assert status == 400
            assert body["error"]["details"]["max_depth"] == 32
    # 32 levels are JSON the schemas read (and refuse as the wrong shape)
    status, _, body = await raw(stack, "PUT", "/v1/locations", nested(32))
    assert (status, error_code(status, body)) == (422, "validation_error"), body
    # brackets inside strings are text, not nesting
    deep_text = json.dumps([{"location_id": "WH-BERLIN", "sku": "[" * 200, "on_hand": 1}])
    status, _, body = await raw(stack, "PUT", "/v1/inventory", deep_text)
    assert (status, error_code(status, body)) == (422, "validation_error"), body


async def test_numbers_longer_than_40_characters_are_400_number_too_long(stack: Stack) -> None:
    for number in (
        "9" * 41,
        "9" * 5_000,
        "-" + "1" * 45,
        "1." + "0" * 60,
        "1" * 30 + "e" + "1" * 20,
    ):
        doc = f'[{{"location_id": "WH-BERLIN", "sku": "S-1", "on_hand": {number}}}]'
        status, _, body = await raw(stack, "PUT", "/v1/inventory", doc)
        assert (status, error_code(status, body)) == (400, "number_too_long"), (number, body)
    # 40 digits are a number the schema reads, and refuses for its range
    doc = f'[{{"location_id": "WH-BERLIN", "sku": "S-1", "on_hand": {"9" * 40}}}]'
    status, _, body = await raw(stack, "PUT", "/v1/inventory", doc)
    assert (status, error_code(status, body)) == (422, "validation_error"), body
    # digits in a string are text
    order = order_body(order_id=f"T-{uuid.uuid4().hex[:12]}")
    order["customer"]["name"] = "1" * 150
    status, _, body = await raw(stack, "POST", "/v1/orders", json.dumps(order), key="web")
    assert status == 201, body


# --------------------------------------------------------------------------- numbers vs columns


async def test_numbers_past_the_database_columns_are_422_and_nothing_is_stored(
    stack: Stack,
) -> None:
    location_id = f"LOC-{uuid.uuid4().hex[:8]}"
    base = {"location_id": location_id, "name": "Edge", "lat": 1.0, "lon": 2.0}
    for field, value in [
        ("lat", 1e308),
        ("lat", -91),
        ("lon", 181),
        ("daily_capacity", 2**31),
        ("daily_capacity", 2**63),
        ("priority", 2**63),
        ("priority", -(2**31)),
        ("lead_time_days", 2**40),
        ("cost_per_shipment", 1e300),
    ]:
        doc = json.dumps([{**base, field: value}])
        status, _, body = await raw(stack, "PUT", "/v1/locations", doc)
        assert (status, error_code(status, body)) == (422, "validation_error"), (field, body)
        assert any(d["field"].endswith(field) for d in body["error"]["details"]), body
    locations = (await stack.call("GET", "/v1/locations", key="ops"))[1]["locations"]
    assert location_id not in {loc["location_id"] for loc in locations}

    for doc in (
        [{"location_id": "WH-BERLIN", "sku": "S-EDGE", "on_hand": 2**31}],
        [{"location_id": "WH-BERLIN", "sku": "S-EDGE", "on_hand": -1}],
    ):
        status, _, body = await raw(stack, "PUT", "/v1/inventory", json.dumps(doc))
        assert (status, error_code(status, body)) == (422, "validation_error"), body
    doc = [{"location_id": "WH-BERLIN", "sku": "S-EDGE", "delta": 2**63}]
    status, _, body = await raw(stack, "POST", "/v1/inventory/adjustments", json.dumps(doc))
    assert (status, error_code(status, body)) == (422, "validation_error"), body

    order = order_body()
    order["lines"][0]["quantity"] = 2**63
    status, _, body = await raw(stack, "POST", "/v1/orders", json.dumps(order), key="web")
    assert (status, error_code(status, body)) == (422, "validation_error"), body


async def test_unknown_fields_in_configuration_writes_are_422(stack: Stack) -> None:
    for path, doc in [
        ("/v1/locations", [{"location_id": "X-1", "name": "X", "lat": 1, "lon": 1, "colour": 1}]),
        ("/v1/sales-channels", [{"channel_id": "x-1", "colour": "red"}]),
        ("/v1/inventory", [{"location_id": "WH-BERLIN", "sku": "S-1", "on_hand": 1, "x": 1}]),
        ("/v1/inventory", {"items": [], "extra": 1}),
        (
            "/v1/inventory/adjustments",
            [{"location_id": "WH-BERLIN", "sku": "S-1", "delta": 1, "sign": "-"}],
        ),
    ]:
        method = "POST" if path.endswith("adjustments") else "PUT"
        status, _, body = await raw(stack, method, path, json.dumps(doc))
        assert (status, error_code(status, body)) == (422, "validation_error"), (path, body)


# --------------------------------------------------------------------------- query parameters


async def query_error(stack: Stack, path: str, key: str = "admin") -> tuple[int, Any]:
    status, _, body = await raw(stack, "GET", path, key=key)
    return status, body


async def test_every_query_parameter_is_validated_with_a_400(stack: Stack) -> None:
    work_orders = "/v1/locations/WH-BERLIN/work-orders"
    bad = [
        # offsets past 64 bits were a 500 from the database
        f"/v1/orders?offset={2**64}",
        f"/v1/orders?offset={2**63}",
        "/v1/orders?offset=-1",
        "/v1/orders?offset=1e3",
        "/v1/orders?limit=0",
        "/v1/orders?limit=501",
        "/v1/orders?limit=%205",
        "/v1/orders?limit=1_0",
        "/v1/orders?limit=%D9%A3",  # an Arabic-Indic three: int() reads it, we do not
        "/v1/orders?limit=5&limit=6",
        "/v1/orders?status=LOST",
        "/v1/orders?status=",
        "/v1/orders?sales_channel=not%20an%20id",
        "/v1/orders?customer_id=" + "c" * 65,
        "/v1/orders?customer_id=%00",
        f"{work_orders}?offset={2**64}",
        f"{work_orders}?limit=100000",
        f"{work_orders}?limit=-5",
        "/v1/availability",
        "/v1/availability?sku=",
        "/v1/availability?sku=" + ",".join(f"S{i}" for i in range(201)),
        "/v1/availability?sku=" + quote("a b"),
        "/v1/availability?sku=%00",
        "/v1/approvals?status=decided",
        "/v1/orders/any?source=both",
        "/v1/orders?x=%00",
        "/v1/orders?%00=1",
        "/v1/orders?customer_id=%ED%A0%80",  # an unpaired surrogate
    ]
    for path in bad:
        status, body = await query_error(stack, path)
        assert status == 400, (path, status, body)
        assert error_code(status, body) == "invalid_query", (path, body)
        details = body["error"]["details"]
        assert details and details[0]["field"], (path, body)
    # the limits themselves are fine
    for path in (
        "/v1/orders?limit=500&offset=1000000000",
        f"{work_orders}?limit=500&offset=0",
        "/v1/orders?status=CANCELLED&sales_channel=web&customer_id=C-1",
        "/v1/availability?sku=SKU-1,SKU-1&sku=SKU-2",
    ):
        status, body = await query_error(stack, path)
        assert status == 200, (path, body)


async def test_path_parameters_no_database_compares_are_400(stack: Stack) -> None:
    for path in (
        "/v1/orders/%00",
        "/v1/orders/A%00B/cancel",
        "/v1/shipments/%00",
        "/v1/documents/%01",
        "/v1/commands/%00",
        "/v1/locations/%00/work-orders",
    ):
        method = "POST" if path.endswith("cancel") else "GET"
        status, _, body = await raw(stack, method, path, None)
        assert (status, error_code(status, body)) == (400, "invalid_path"), (path, body)
    # a long id is simply not found
    status, _, body = await raw(stack, "GET", "/v1/orders/" + "x" * 3000)
    assert (status, error_code(status, body)) == (404, "order_not_found"), body


# --------------------------------------------------------------------------- methods, headers


async def test_a_wrong_method_is_405_with_allow_and_the_error_json(stack: Stack) -> None:
    for method, path, allowed in [
        ("DELETE", "/v1/orders", {"GET", "POST"}),
        ("PATCH", "/v1/locations", {"GET", "PUT"}),
        ("PUT", "/v1/orders/ANY/cancel", {"POST"}),
        ("POST", "/health", {"GET"}),
    ]:
        status, headers, body = await raw(stack, method, path, "{}")
        assert (status, error_code(status, body)) == (405, "method_not_allowed"), (path, body)
        assert {m.strip() for m in headers["Allow"].split(",")} >= allowed, headers
        assert set(body["error"]["details"]["allowed_methods"]) >= allowed, body


async def test_no_answer_names_the_server_software(stack: Stack) -> None:
    answers = [
        await raw(stack, "GET", "/health", key=None),
        await raw(stack, "GET", "/openapi.json", key=None),
        await raw(stack, "GET", "/v1/orders", key=None),  # 401
        await raw(stack, "GET", "/v1/orders"),
        await raw(stack, "GET", "/v1/nothing-here"),  # 404
        await raw(stack, "DELETE", "/v1/orders"),  # 405
        await raw(stack, "PUT", "/v1/locations", "[" * 40),  # 400
        await raw(stack, "PUT", "/v1/locations", b"[" + b" " * (17 << 20) + b"]"),  # 413
    ]
    assert {status for status, _, _ in answers} == {200, 401, 404, 405, 400, 413}
    for status, headers, _ in answers:
        assert "Server" not in headers, (status, headers)
