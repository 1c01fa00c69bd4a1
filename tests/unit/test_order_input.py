"""OrderInput: the order body a web shop posts (DESIGN section 5)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from workflows.model import OrderInput

DESIGN_BODY = """
{"order_id": "WEB-1001", "sales_channel": "web",
 "customer": {"id": "C-1", "email": "a@example.com", "name": "Ada"},
 "ship_to": {"name": "Ada", "line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
             "country": "DE", "lat": 52.52, "lon": 13.40},
 "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
 "payment": {"method": "card", "amount": "39.98", "currency": "EUR", "authorized": true},
 "delivery": {"type": "ship", "ship_complete": false}}
"""


def body() -> dict[str, Any]:
    return copy.deepcopy(json.loads(DESIGN_BODY))


def error_locations(data: dict[str, Any]) -> list[tuple]:
    with pytest.raises(ValidationError) as err:
        OrderInput.model_validate(data)
    return [e["loc"] for e in err.value.errors()]


def test_design_order_body_parses():
    order = OrderInput.model_validate_json(DESIGN_BODY)
    assert order.order_id == "WEB-1001"
    assert order.lines[0].quantity == 2
    assert order.payment.authorized is True
    assert order.ship_to.lat == 52.52
    assert order.total == Decimal("39.98")


def test_delivery_defaults_to_ship_split_allowed():
    data = body()
    del data["delivery"]
    delivery = OrderInput.model_validate(data).delivery
    assert (delivery.type, delivery.ship_complete) == ("ship", False)


def test_money_is_exact_decimal_and_serialised_as_string():
    order = OrderInput.model_validate_json(DESIGN_BODY)
    assert order.lines[0].unit_price == Decimal("19.99")
    assert order.payment.amount == Decimal("39.98")
    wire = order.model_dump(mode="json")
    assert wire["lines"][0]["unit_price"] == "19.99"
    assert wire["payment"]["amount"] == "39.98"
    assert OrderInput.model_validate_json(order.model_dump_json()) == order


def test_total_is_exact_for_many_cents():
    data = body()
    data["lines"] = [
        {"line_id": str(i), "sku": "SKU-1", "quantity": 3, "unit_price": "0.10"} for i in range(10)
    ]
    assert OrderInput.model_validate(data).total == Decimal("3.00")


def test_money_with_more_than_two_decimals_rejected():
    data = body()
    data["lines"][0]["unit_price"] = "19.999"
    assert error_locations(data) == [("lines", 0, "unit_price")]


def test_negative_money_rejected():
    data = body()
    data["payment"]["amount"] = "-1.00"
    assert error_locations(data) == [("payment", "amount")]


def test_quantity_zero_rejected():
    data = body()
    data["lines"][0]["quantity"] = 0
    assert error_locations(data) == [("lines", 0, "quantity")]


def test_fractional_quantity_rejected():
    data = body()
    data["lines"][0]["quantity"] = 1.5
    assert error_locations(data) == [("lines", 0, "quantity")]


def test_duplicate_line_ids_rejected():
    data = body()
    data["lines"].append(dict(data["lines"][0]))
    with pytest.raises(ValidationError, match="duplicate line_id '1'"):
        OrderInput.model_validate(data)


def test_order_without_lines_rejected():
    data = body()
    data["lines"] = []
    assert error_locations(data) == [("lines",)]


def test_unknown_top_level_field_rejected():
    data = body()
    data["coupon"] = "FREE"
    assert error_locations(data) == [("coupon",)]


def test_unknown_nested_field_rejected():
    data = body()
    data["lines"][0]["qty"] = 2
    assert error_locations(data) == [("lines", 0, "qty")]


def test_lowercase_country_rejected():
    data = body()
    data["ship_to"]["country"] = "de"
    assert error_locations(data) == [("ship_to", "country")]
