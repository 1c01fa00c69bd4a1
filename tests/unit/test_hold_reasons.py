"""Validation rules: why an order goes ON_HOLD."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from activities.validation import hold_reasons
from workflows.model import OrderInput, SalesChannelConfig

WEB = SalesChannelConfig(channel_id="web")


def make_order(**changes: Any) -> OrderInput:
    body: dict[str, Any] = {
        "order_id": "WEB-1001",
        "sales_channel": "web",
        "customer": {"id": "C-1"},
        "ship_to": {"line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
                    "country": "DE"},
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
        "payment": {"method": "card", "amount": "39.98", "currency": "EUR", "authorized": True},
    }  # fmt: skip
    for key, value in changes.items():
        if isinstance(value, dict):
            body[key] = {**body.get(key, {}), **value}
        else:
            body[key] = value
    return OrderInput.model_validate(body)


def test_valid_order_has_no_hold_reasons():
    assert hold_reasons(make_order(), WEB) == []


def test_unauthorized_payment_holds():
    assert hold_reasons(make_order(payment={"authorized": False}), WEB) == [
        "payment is not authorized"
    ]


def test_payment_amount_not_equal_to_total_holds():
    (reason,) = hold_reasons(make_order(payment={"amount": "39.97"}), WEB)
    assert "39.97" in reason
    assert "39.98" in reason


def test_payment_amount_compared_as_decimal_not_text():
    assert hold_reasons(make_order(payment={"amount": "39.980"}), WEB) == []


def test_unknown_sales_channel_holds():
    (reason,) = hold_reasons(make_order(), None)
    assert "unknown sales channel" in reason
    assert "web" in reason


def test_total_above_fraud_threshold_holds():
    channel = SalesChannelConfig(channel_id="web", fraud_total_threshold=Decimal("30"))
    (reason,) = hold_reasons(make_order(), channel)
    assert reason.startswith("fraud check")


def test_total_at_fraud_threshold_passes():
    channel = SalesChannelConfig(channel_id="web", fraud_total_threshold=Decimal("39.98"))
    assert hold_reasons(make_order(), channel) == []


def test_pickup_without_location_holds():
    reasons = hold_reasons(make_order(delivery={"type": "pickup"}), WEB)
    assert reasons == ["pickup order without pickup_location_id"]


def test_every_failed_rule_is_reported():
    order = make_order(payment={"authorized": False, "amount": "1.00"})
    assert len(hold_reasons(order, None)) == 3
