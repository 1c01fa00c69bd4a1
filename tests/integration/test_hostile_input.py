"""Hostile or careless input is refused at the API with the usual error JSON, before it is
stored or reaches Temporal, so it can never poison an order: non-finite or absurd numbers,
URLs that are not http(s), oversized lists and bodies, empty cancel lists."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

from tests.integration.conftest import Stack, order_body, unique_sku

DAY = 86_400


async def send(
    stack: Stack, method: str, path: str, data: bytes | str, *, key: str = "admin"
) -> tuple[int, Any]:
    """Send a raw body (JSON that json.dumps would not write, or far too much of it)."""
    resp = await stack.http.request(
        method,
        path,
        data=data.encode() if isinstance(data, str) else data,
        headers={
            "Authorization": f"Bearer {stack.keys[key]}",
            "Content-Type": "application/json",
        },
    )
    assert "json" in resp.headers.get("Content-Type", ""), (resp.status, await resp.text())
    return resp.status, await resp.json()


def assert_error(status: int, body: Any, *codes: str) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body)
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] in codes, body
    return dict(error)


def fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error["details"] or []}


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def channel_ids(stack: Stack) -> set[str]:
    status, body = await stack.call("GET", "/v1/sales-channels", key="ops")
    assert status == 200, body
    return {c["channel_id"] for c in body["sales_channels"]}


async def location_ids(stack: Stack) -> set[str]:
    status, body = await stack.call("GET", "/v1/locations", key="ops")
    assert status == 200, body
    return {loc["location_id"] for loc in body["locations"]}


# --------------------------------------------------------------------------- sales channels


async def test_non_finite_numbers_in_a_channel_are_refused_and_never_stored(stack: Stack) -> None:
    refused: list[str] = []
    for field, literal in [
        ("backorder_retry_seconds", "Infinity"),
        ("backorder_retry_seconds", "-Infinity"),
        ("backorder_retry_seconds", "NaN"),
        ("max_distance_km", "Infinity"),
        # too large for a double: Python's json reads it as inf
        ("backorder_retry_seconds", "1e400"),
        ("max_distance_km", "1e999"),
    ]:
        channel_id = fresh("inf")
        status, body = await send(
            stack,
            "PUT",
            "/v1/sales-channels",
            f'[{{"channel_id": "{channel_id}", "{field}": {literal}}}]',
        )
        assert_error(status, body, "invalid_json", "validation_error")
        refused.append(channel_id)
    assert not set(refused) & await channel_ids(stack)


BAD_CHANNEL_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"backorder_retry_seconds": 1e308}, "backorder_retry_seconds"),
    ({"backorder_retry_seconds": 31 * DAY}, "backorder_retry_seconds"),
    ({"backorder_retry_seconds": -5}, "backorder_retry_seconds"),
    ({"backorder_retry_seconds": 0}, "backorder_retry_seconds"),
    ({"backorder_max_attempts": 10**9}, "backorder_max_attempts"),
    ({"backorder_max_attempts": -1}, "backorder_max_attempts"),
    ({"max_distance_km": 1e300}, "max_distance_km"),
    ({"routing_weights": {"distance": 1e308}}, "routing_weights.distance"),
    ({"routing_weights": {"cost": -1}}, "routing_weights.cost"),
    ({"safety_buffers": {"store": 10**12}}, "safety_buffers.store"),
    ({"safety_buffers": {"store": -1}}, "safety_buffers.store"),
    ({"fraud_total_threshold": "1e400"}, "fraud_total_threshold"),
    ({"fraud_total_threshold": "-1"}, "fraud_total_threshold"),
    ({"return_window_days": 10_000}, "return_window_days"),
    ({"name": "x" * 10_000}, "name"),
    ({"excluded_locations": ["WH-BERLIN"] * 5_000}, "excluded_locations"),
    ({"document_kinds": ["delivery_note"] * 1_000}, "document_kinds"),
    (
        {"approval_reasons": [{"reason": "r", "approvers": ["ann"], "timeout_seconds": 1e12}]},
        "approval_reasons.0.timeout_seconds",
    ),
    (
        {"approval_reasons": [{"reason": "r", "approvers": ["ann"], "rank": 10**12}]},
        "approval_reasons.0.rank",
    ),
    (
        {"approval_reasons": [{"reason": "r", "approvers": ["a" * 10_000]}]},
        "approval_reasons.0.approvers.0",
    ),
    (
        {"approval_reasons": [{"reason": "r", "approvers": [f"a{i}" for i in range(5_000)]}]},
        "approval_reasons.0.approvers",
    ),
    (
        {"approval_reasons": [{"reason": f"r{i}", "approvers": ["ann"]} for i in range(200)]},
        "approval_reasons",
    ),
    (
        {
            "approval_reasons": [
                {
                    "reason": "r",
                    "approvers": ["ann"],
                    "rule": {
                        "conditions": [
                            {"field": "sku", "op": "in", "value": [f"S{i}" for i in range(50_000)]}
                        ]
                    },
                }
            ]
        },
        "approval_reasons.0.rule.conditions.0.value",
    ),
    # a typo is not silently ignored
    ({"backorder_retry_secs": 60}, "backorder_retry_secs"),
    ({"routing_weights": {"distanse": 1}}, "routing_weights.distanse"),
]


async def test_absurd_channel_numbers_lists_and_typos_get_422(stack: Stack) -> None:
    for config, field in BAD_CHANNEL_FIELDS:
        channel_id = fresh("bad")
        status, body = await stack.call(
            "PUT", "/v1/sales-channels", json=[{"channel_id": channel_id, **config}]
        )
        error = assert_error(status, body, "validation_error")
        assert any(f.startswith(f"0.{field}") for f in fields(error)), (config, error)
        assert channel_id not in await channel_ids(stack), config


BAD_URLS = [
    "file:///etc/passwd",
    "javascript:alert(1)",
    "ftp://files.example.com/approvals",
    "gopher://example.com/",
    "http://",
    "https:///only-a-path",
    "example.com/hook",
    "//example.com/hook",
    "http://exa mple.com/hook",
    "https://example.com/\nX-Injected: 1",
    "https://" + "a" * 600 + ".example.com/",
]


async def test_channel_urls_must_be_http_or_https_with_a_host(stack: Stack) -> None:
    for url in BAD_URLS:
        for config, field in [
            ({"callback_url": url}, "callback_url"),
            (
                {"approval_reasons": [{"reason": "r", "approvers": ["ann"], "webhook_url": url}]},
                "approval_reasons.0.webhook_url",
            ),
        ]:
            channel_id = fresh("url")
            status, body = await stack.call(
                "PUT", "/v1/sales-channels", json=[{"channel_id": channel_id, **config}]
            )
            error = assert_error(status, body, "validation_error")
            assert f"0.{field}" in fields(error), (url, error)
            assert channel_id not in await channel_ids(stack)
    # real URLs are kept as given
    channel_id = fresh("url")
    good = {
        "channel_id": channel_id,
        "callback_url": "https://shop.example.com/oms/callback?token=a-b",
        "approval_reasons": [
            {"reason": "r", "approvers": ["ann"], "webhook_url": "http://127.0.0.1:8080/hook"}
        ],
        "backorder_retry_seconds": 30 * DAY,
        "backorder_max_attempts": 1000,
    }
    status, body = await stack.call("PUT", "/v1/sales-channels", json=[good])
    assert status == 200, body
    status, body = await stack.call("GET", "/v1/sales-channels", key="ops")
    stored = next(c for c in body["sales_channels"] if c["channel_id"] == channel_id)
    assert stored["callback_url"] == good["callback_url"]
    assert stored["approval_reasons"][0]["webhook_url"] == "http://127.0.0.1:8080/hook"
    assert stored["backorder_retry_seconds"] == 30 * DAY


async def test_a_channel_at_its_limits_still_runs_orders(stack: Stack) -> None:
    """The largest accepted values are values the workflows can live with."""
    channel = await stack.make_channel(
        "max",
        backorder_retry_seconds=30 * DAY,
        backorder_max_attempts=1000,
        max_distance_km=40_000,
        routing_weights={"distance": 1000, "stock": 1000, "cost": 1000},
        safety_buffers={"store": 1_000_000},
        return_window_days=365,
        approval_reasons=[
            {"reason": "slow", "approvers": ["alice"], "timeout_seconds": 30 * DAY, "rank": 100}
        ],
    )
    await stack.add_key(channel, "webshop", channel)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    order_id = await stack.create_order(
        order_body(channel=channel, sku=sku, quantity=2), key=channel
    )
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="alice",
        json={"reason": "slow", "decision": "approve"},
    )
    assert status == 200, body
    # one unit is not found: it waits for stock on a 30-day timer
    shipment = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{shipment}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 1}]},
    )
    assert status == 200, body
    await stack.wait_for(
        order_id,
        lambda v: (
            v["lines"][0]["status"] == "BACKORDERED"
            and "backorder_waiting" in [e["type"] for e in v["events"]]
        ),
        "a backorder wait",
    )
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/cancel", key=channel, json={})
    assert status == 200, body
    await stack.wait_status(order_id, "CANCELLED")


# --------------------------------------------------------------------------- locations


def location(**fields: Any) -> dict[str, Any]:
    # disabled: a location made here never takes part in other tests' routing
    return {
        "location_id": fresh("LOC"),
        "name": "test",
        "lat": 52.0,
        "lon": 13.0,
        "enabled": False,
        **fields,
    }


async def test_absurd_or_unknown_location_fields_get_422(stack: Stack) -> None:
    for patch, field in [
        ({"daily_capacity": 10**12}, "daily_capacity"),
        ({"daily_capacity": -1}, "daily_capacity"),
        ({"priority": 10**15}, "priority"),
        ({"cost_per_shipment": 1e308}, "cost_per_shipment"),
        ({"cost_per_shipment": -3}, "cost_per_shipment"),
        ({"channels": [f"ch-{i}" for i in range(5_000)]}, "channels"),
        ({"delivery_types": ["ship"] * 100}, "delivery_types"),
        ({"time_zone": "Europe/" + "x" * 10_000}, "time_zone"),
        ({"webhok_url": "https://wms.example.com/"}, "webhok_url"),
        *[({"webhook_url": url}, "webhook_url") for url in BAD_URLS],
    ]:
        body = location(**patch)
        status, answer = await stack.call("PUT", "/v1/locations", json=[body])
        error = assert_error(status, answer, "validation_error")
        assert f"0.{field}" in fields(error), (patch, error)
        assert body["location_id"] not in await location_ids(stack), patch
    for literal in ("NaN", "Infinity", "1e400"):
        body = location()
        text = json.dumps([body]).replace('"lat": 52.0', f'"lat": {literal}')
        status, answer = await send(stack, "PUT", "/v1/locations", text)
        assert_error(status, answer, "invalid_json", "validation_error")
        assert body["location_id"] not in await location_ids(stack)
    good = location(webhook_url="https://wms.example.com/work-orders", daily_capacity=1_000_000)
    status, answer = await stack.call("PUT", "/v1/locations", json=[good])
    assert status == 200, answer
    assert good["location_id"] in await location_ids(stack)


# --------------------------------------------------------------------------- orders


async def open_order(stack: Stack, key: str = "web") -> tuple[str, str]:
    """An order of one line in fulfillment at Berlin: (order id, open shipment key)."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2), key=key)
    shipment = await stack.current_shipment(order_id, "WH-BERLIN")
    return order_id, shipment


async def test_empty_cancel_list_is_422_and_omitting_it_cancels_the_order(stack: Stack) -> None:
    order_id, _ = await open_order(stack)
    path = f"/v1/orders/{order_id}/cancel"
    status, body = await stack.call("POST", path, key="web", json={"line_ids": []})
    error = assert_error(status, body, "validation_error")
    assert "line_ids" in fields(error)
    view = await stack.order(order_id)
    assert view["status"] != "CANCELLED"
    assert view["lines"][0]["cancelled_quantity"] == 0
    assert view["returns"] == []
    status, body = await stack.call("POST", path, key="web", json={"reason": "changed my mind"})
    assert status == 200, body
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["lines"][0]["cancelled_quantity"] == 2


async def test_oversized_or_malformed_cancel_lists_never_reach_the_order(stack: Stack) -> None:
    order_id, _ = await open_order(stack)
    path = f"/v1/orders/{order_id}/cancel"
    # a few MB of line ids, sent by the web shop's key
    huge = {"line_ids": [f"L{i:07d}" for i in range(300_000)], "reason": "oops"}
    for bad, field in [
        (huge, "line_ids"),
        ({"line_ids": [str(i) for i in range(501)]}, "line_ids"),
        ({"line_ids": ["1" * 65]}, "line_ids.0"),
        ({"line_ids": ["line one"]}, "line_ids.0"),
        ({"line_ids": [1]}, "line_ids.0"),
        ({"line_ids": "1"}, "line_ids"),
        ({"reason": 42}, "reason"),
        ({"line_ids": ["1"], "comment": "unknown field"}, "comment"),
    ]:
        status, body = await stack.call("POST", path, key="web", json=bad)
        error = assert_error(status, body, "validation_error")
        assert field in fields(error), (field, error)
    view = await stack.order(order_id)
    assert view["status"] == "IN_FULFILLMENT"
    assert view["returns"] == [] and view["lines"][0]["cancelled_quantity"] == 0
    # the same id twice is the same line once; an endless reason is cut
    status, body = await stack.call(
        "POST", path, key="web", json={"line_ids": ["1", "1"], "reason": "r" * 100_000}
    )
    assert status == 200, body
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["lines"][0]["cancelled_quantity"] == 2
    reason = view["returns"][0]["reason"]
    assert "r" * 1000 in reason and len(reason) <= 2000, len(reason)


async def test_oversized_pick_reports_are_refused_and_the_shipment_still_works(
    stack: Stack,
) -> None:
    order_id, shipment = await open_order(stack)
    path = f"/v1/shipments/{shipment}/pick"
    seventy_thousand = {
        "lines": [{"line_id": f"L{i}", "picked_quantity": 1} for i in range(70_000)]
    }
    for bad, field in [
        (seventy_thousand, "lines"),
        ({"lines": [{"line_id": "1", "picked_quantity": 1}] * 2}, "lines"),
        ({"lines": [{"line_id": "1", "picked_quantity": "2"}]}, "lines.0.picked_quantity"),
        ({"lines": [{"line_id": "1", "picked_quantity": 10**12}]}, "lines.0.picked_quantity"),
        ({"lines": [{"line_id": "x" * 100, "picked_quantity": 1}]}, "lines.0.line_id"),
        ({"lines": []}, "lines"),
    ]:
        status, body = await stack.call("POST", path, key="WH-BERLIN", json=bad)
        error = assert_error(status, body, "validation_error")
        assert field in fields(error), (field, error)
    await stack.fulfil(shipment, "WH-BERLIN", {"1": 2})
    await stack.wait_status(order_id, "DELIVERED")


async def test_manual_assignments_with_repeated_pairs_get_422(stack: Stack) -> None:
    order_id, _ = await open_order(stack)
    pair = {"line_id": "1", "location_id": "WH-BERLIN"}
    for bad, field in [
        ({"assignments": [pair, pair]}, "assignments"),
        ({"assignments": [{**pair, "quantity": 10**12}]}, "assignments.0.quantity"),
        ({"assignments": [{**pair, "line_id": "x" * 100}]}, "assignments.0.line_id"),
    ]:
        status, body = await stack.call(
            "POST", f"/v1/orders/{order_id}/assignments", key="ops", json=bad
        )
        error = assert_error(status, body, "validation_error")
        assert field in fields(error), (field, error)


async def test_a_decline_with_the_longest_comment_still_cancels_the_order(stack: Stack) -> None:
    """The cancel reason the order writes for a decline quotes the approver's comment."""
    approver = "a" * 100
    if approver not in stack.keys:
        await stack.add_key(approver, "approver")
    channel = await stack.make_channel(
        "long", approval_reasons=[{"reason": "r" * 64, "approvers": [approver]}]
    )
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), "ops")
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key=approver,
        json={"reason": "r" * 64, "decision": "decline", "comment": "c" * 1000},
    )
    assert status == 200, body
    view = await stack.wait_status(order_id, "CANCELLED")
    assert view["lines"][0]["cancelled_quantity"] == 1
    assert "c" * 1000 in view["returns"][0]["reason"]


# --------------------------------------------------------------------------- bodies


async def test_a_body_over_the_size_limit_is_413_with_the_error_json(stack: Stack) -> None:
    order_id, _ = await open_order(stack)
    twenty_mb = b'{"line_ids": ["' + b"1" * (20 * 1024 * 1024) + b'"]}'
    status, body = await send(stack, "POST", f"/v1/orders/{order_id}/cancel", twenty_mb, key="web")
    assert status == 413, body
    assert_error(status, body, "body_too_large")
    status, body = await send(stack, "PUT", "/v1/sales-channels", b"[" + b" " * (20 << 20) + b"]")
    assert status == 413, body
    # 20 kB on the wire, 20 MB once inflated: the limit holds for what is inflated
    bomb = gzip.compress(b"[" + b" " * (20 << 20) + b"]")
    assert len(bomb) < 100_000
    resp = await stack.http.put(
        "/v1/sales-channels",
        data=bomb,
        headers={
            "Authorization": f"Bearer {stack.keys['admin']}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status == 413, await resp.text()
    assert_error(resp.status, await resp.json(), "body_too_large")
    assert (await stack.order(order_id))["status"] == "IN_FULFILLMENT"


async def test_deeply_nested_json_is_400(stack: Stack) -> None:
    nested = "[" * 200_000 + "]" * 200_000
    for method, path in [("PUT", "/v1/sales-channels"), ("PUT", "/v1/locations")]:
        status, body = await send(stack, method, path, nested)
        assert_error(status, body, "json_too_deep")


async def test_numbers_python_cannot_read_are_400(stack: Stack) -> None:
    huge = "9" * 5_000  # beyond Python's int conversion limit
    status, body = await send(
        stack,
        "PUT",
        "/v1/inventory",
        f'[{{"location_id": "WH-BERLIN", "sku": "S", "on_hand": {huge}}}]',
    )
    assert_error(status, body, "number_too_long")


async def test_a_malformed_channel_in_the_availability_query_is_404(stack: Stack) -> None:
    for channel in ("not a channel id!", "x" * 5_000):
        status, body = await stack.call(
            "GET", f"/v1/availability?sku=SKU-1&sales_channel={channel}", key="ops"
        )
        assert status == 404, body
        assert_error(status, body, "sales_channel_not_found")


async def test_an_unroutable_order_of_many_lines_is_still_auto_cancelled(stack: Stack) -> None:
    """The cancel reason the order writes quotes a routing reason per line: however long
    that gets, the order must still be cancelled."""
    channel = await stack.make_channel("auto", auto_cancel_not_announced=True)
    stem = uuid.uuid4().hex
    lines = [
        {
            "line_id": str(i),
            "sku": f"SKU-{stem}-{i:03d}-{'X' * 20}",
            "quantity": 1,
            "unit_price": "1.00",
        }
        for i in range(40)
    ]
    body = order_body(channel=channel, lines=lines)
    body["payment"]["amount"] = "40.00"
    order_id = await stack.create_order(body, key="ops")
    view = await stack.wait_status(order_id, "CANCELLED")
    assert all(line["cancelled_quantity"] == 1 for line in view["lines"])
    assert view["returns"][0]["reason"].startswith("not announced: line 0:")


async def test_text_no_database_can_store_is_refused(stack: Stack) -> None:
    """NUL characters and unpaired surrogates are valid JSON escapes, but PostgreSQL
    stores neither: a cancel reason with a NUL used to fail the order's projection
    activity for ever."""
    order_id, _ = await open_order(stack)
    for text in ("a\\u0000b", "\\ud800", "x\\udfffy"):
        status, body = await send(
            stack, "POST", f"/v1/orders/{order_id}/cancel", f'{{"reason": "{text}"}}', key="web"
        )
        error = assert_error(status, body, "validation_error")
        assert fields(error) == {"reason"}, error
        channel_id = fresh("txt")
        status, body = await send(
            stack,
            "PUT",
            "/v1/sales-channels",
            f'[{{"channel_id": "{channel_id}", "name": "{text}",'
            f' "safety_buffers": {{"{text}": 1}}}}]',
        )
        error = assert_error(status, body, "validation_error")
        assert "0.name" in fields(error), error
        assert any(f.startswith("0.safety_buffers.") for f in fields(error)), error
        assert channel_id not in await channel_ids(stack)
        loc = location()
        raw = json.dumps([loc]).replace('"name": "test"', f'"name": "{text}"')
        status, body = await send(stack, "PUT", "/v1/locations", raw)
        assert fields(assert_error(status, body, "validation_error")) == {"0.name"}
        assert loc["location_id"] not in await location_ids(stack)
        order = order_body()
        raw = json.dumps(order).replace('"name": "Ada"', f'"name": "{text}"', 1)
        status, body = await send(stack, "POST", "/v1/orders", raw, key="web")
        assert "customer.name" in fields(assert_error(status, body, "validation_error"))
        status, body = await stack.call("GET", f"/v1/orders/{order['order_id']}", key="ops")
        assert status == 404, body
    # the order was never touched and cancels normally
    status, body = await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "plain"}
    )
    assert status == 200, body
    view = await stack.wait_status(order_id, "CANCELLED")
    assert "plain" in view["returns"][0]["reason"]
