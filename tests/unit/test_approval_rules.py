"""Approval rules: OrderFacts of an order, and structured conditions evaluated on them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from workflows.approval import OrderFacts, condition_holds, rule_applies
from workflows.model import ApprovalReasonConfig, ApprovalRule, OrderInput, RuleCondition

# the order body of DESIGN.md section 5, with a second line
ORDER = {
    "order_id": "WEB-1001",
    "sales_channel": "web",
    "customer": {"id": "C-1", "email": "a@example.com", "name": "Ada"},
    "ship_to": {
        "name": "Ada",
        "line1": "Main St 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
        "lat": 52.52,
        "lon": 13.40,
    },
    "lines": [
        {"line_id": "1", "sku": "SKU-1", "quantity": 2, "unit_price": "19.99"},
        {"line_id": "2", "sku": "SKU-2", "quantity": 1, "unit_price": "60.02"},
    ],
    "payment": {"method": "card", "amount": "100.00", "currency": "EUR", "authorized": True},
    "delivery": {"type": "ship", "ship_complete": False},
}


@pytest.fixture
def order() -> OrderInput:
    return OrderInput.model_validate(ORDER)


@pytest.fixture
def facts(order: OrderInput) -> OrderFacts:
    return OrderFacts.of(order, ["WH-BERLIN", "STORE-7"])


def cond(field: str, op: str, value: object) -> RuleCondition:
    return RuleCondition(field=field, op=op, value=value)


def holds(facts: OrderFacts, field: str, op: str, value: object) -> bool:
    return condition_holds(cond(field, op, value), facts)


# --------------------------------------------------------------------------- OrderFacts


def test_order_facts_of_an_order(order: OrderInput):
    facts = OrderFacts.of(order, ["WH-BERLIN", "STORE-7", "WH-BERLIN"])
    assert facts.order_total == Decimal("100.00")
    assert facts.payment_method == "card"
    assert facts.customer_id == "C-1"
    assert facts.currency == "EUR"
    assert facts.ship_to_country == "DE"
    assert facts.line_count == 2
    assert facts.skus == frozenset({"SKU-1", "SKU-2"})
    assert facts.locations == frozenset({"WH-BERLIN", "STORE-7"})


def test_order_facts_total_is_the_sum_of_lines_not_the_payment_amount():
    body = {**ORDER, "payment": {**ORDER["payment"], "amount": "1.00"}}
    facts = OrderFacts.of(OrderInput.model_validate(body), [])
    assert facts.order_total == Decimal("100.00")
    assert facts.locations == frozenset()


def test_order_facts_of_the_design_example():
    body = {
        **ORDER,
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
    }
    facts = OrderFacts.of(OrderInput.model_validate(body), ["WH-1"])
    assert facts.order_total == Decimal("39.98")
    assert facts.line_count == 1
    assert facts.skus == frozenset({"SKU-1"})


# --------------------------------------------------------------------------- rule_applies


def test_no_rule_applies_to_every_order(facts: OrderFacts):
    assert rule_applies(None, facts) is True


def test_match_all_needs_every_condition(facts: OrderFacts):
    rule = ApprovalRule(
        match="all",
        conditions=[
            cond("payment_method", "eq", "card"),
            cond("order_total", "gt", "500"),
        ],
    )
    assert rule_applies(rule, facts) is False
    rule = ApprovalRule(
        conditions=[
            cond("payment_method", "eq", "card"),
            cond("order_total", "ge", "100"),
        ]
    )
    assert rule.match == "all"
    assert rule_applies(rule, facts) is True


def test_match_any_needs_one_condition(facts: OrderFacts):
    rule = ApprovalRule(
        match="any",
        conditions=[
            cond("payment_method", "eq", "invoice"),
            cond("order_total", "gt", "50"),
        ],
    )
    assert rule_applies(rule, facts) is True
    rule = ApprovalRule(
        match="any",
        conditions=[
            cond("payment_method", "eq", "invoice"),
            cond("order_total", "gt", "500"),
        ],
    )
    assert rule_applies(rule, facts) is False


def test_rule_needs_at_least_one_condition():
    with pytest.raises(ValidationError):
        ApprovalRule(conditions=[])


def test_rule_from_json_config(facts: OrderFacts):
    rule = ApprovalRule.model_validate(
        {
            "match": "all",
            "conditions": [
                {"field": "order_total", "op": "ge", "value": "100.00"},
                {"field": "payment_method", "op": "in", "value": ["card", "paypal"]},
                {"field": "ship_to_country", "op": "not_in", "value": ["US", "GB"]},
            ],
        }
    )
    assert rule_applies(rule, facts) is True


# --------------------------------------------------------------------------- order_total


@pytest.mark.parametrize("value", [Decimal("99.99"), "99.99", "99.999", "0"])
def test_order_total_gt(facts: OrderFacts, value: object):
    assert holds(facts, "order_total", "gt", value)


@pytest.mark.parametrize("value", [Decimal("100"), "100.00", "100", "100.01"])
def test_order_total_not_gt(facts: OrderFacts, value: object):
    assert not holds(facts, "order_total", "gt", value)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("ge", Decimal("100"), True),
        ("ge", "100.00", True),
        ("ge", "99.99", True),
        ("ge", "100.01", False),
        ("lt", Decimal("100.01"), True),
        ("lt", "100", False),
        ("lt", "99", False),
        ("le", Decimal("100.00"), True),
        ("le", "100", True),
        ("le", "99.99", False),
        ("eq", Decimal("100"), True),
        ("eq", "100.00", True),
        ("eq", "100.0", True),
        ("eq", "100.01", False),
        ("ne", "100", False),
        ("ne", Decimal("42"), True),
    ],
)
def test_order_total_comparisons(facts: OrderFacts, op: str, value: object, expected: bool):
    assert holds(facts, "order_total", op, value) is expected


def test_order_total_in_and_not_in(facts: OrderFacts):
    assert holds(facts, "order_total", "in", ["50", "100.00"])
    assert not holds(facts, "order_total", "in", ["50", "99.99"])
    assert holds(facts, "order_total", "not_in", ["50", "99.99"])
    assert not holds(facts, "order_total", "not_in", ["100"])


@pytest.mark.parametrize(
    ("op", "value"), [("gt", "lots"), ("eq", "NaN"), ("in", ["lots"]), ("in", ["sNaN"])]
)
def test_order_total_rule_with_a_non_number_is_rejected(op: str, value: object):
    with pytest.raises(ValidationError):
        RuleCondition.model_validate({"field": "order_total", "op": op, "value": value})


def test_single_value_operator_rejects_a_list():
    with pytest.raises(ValidationError):
        RuleCondition.model_validate({"field": "payment_method", "op": "eq", "value": ["a"]})


def test_order_total_value_from_json_number(facts: OrderFacts):
    c = RuleCondition.model_validate({"field": "order_total", "op": "gt", "value": 50})
    assert condition_holds(c, facts)


def test_line_count_compares_as_a_number(facts: OrderFacts):
    assert holds(facts, "line_count", "ge", "2")
    assert holds(facts, "line_count", "eq", Decimal("2"))
    assert not holds(facts, "line_count", "gt", "2")
    assert holds(facts, "line_count", "in", ["1", "2"])


# --------------------------------------------------------------------------- text fields


def test_payment_method_eq(facts: OrderFacts):
    assert holds(facts, "payment_method", "eq", "card")
    assert not holds(facts, "payment_method", "eq", "invoice")


def test_payment_method_ne(facts: OrderFacts):
    assert holds(facts, "payment_method", "ne", "invoice")
    assert not holds(facts, "payment_method", "ne", "card")


def test_payment_method_in(facts: OrderFacts):
    assert holds(facts, "payment_method", "in", ["invoice", "card"])
    assert not holds(facts, "payment_method", "in", ["invoice", "cod"])
    assert not holds(facts, "payment_method", "in", [])


def test_payment_method_not_in(facts: OrderFacts):
    assert holds(facts, "payment_method", "not_in", ["invoice", "cod"])
    assert not holds(facts, "payment_method", "not_in", ["card"])
    assert holds(facts, "payment_method", "not_in", [])


def test_customer_id_ne(facts: OrderFacts):
    assert holds(facts, "customer_id", "ne", "C-2")
    assert not holds(facts, "customer_id", "ne", "C-1")
    assert holds(facts, "customer_id", "eq", "C-1")


def test_country_and_currency(facts: OrderFacts):
    assert holds(facts, "ship_to_country", "eq", "DE")
    assert holds(facts, "ship_to_country", "not_in", ["US", "GB"])
    assert holds(facts, "currency", "eq", "EUR")
    assert not holds(facts, "currency", "in", ["USD", "GBP"])


# --------------------------------------------------------------------------- set fields


def test_sku_eq_matches_when_any_line_has_it(facts: OrderFacts):
    assert holds(facts, "sku", "eq", "SKU-2")
    assert holds(facts, "sku", "eq", "SKU-1")
    assert not holds(facts, "sku", "eq", "SKU-3")


def test_sku_ne_matches_when_no_line_has_it(facts: OrderFacts):
    assert holds(facts, "sku", "ne", "SKU-3")
    assert not holds(facts, "sku", "ne", "SKU-2")  # one line has it


def test_sku_in_and_not_in(facts: OrderFacts):
    assert holds(facts, "sku", "in", ["SKU-9", "SKU-2"])
    assert not holds(facts, "sku", "in", ["SKU-9"])
    assert holds(facts, "sku", "not_in", ["SKU-9"])
    assert not holds(facts, "sku", "not_in", ["SKU-9", "SKU-1"])


def test_location_id_in_the_chosen_locations(facts: OrderFacts):
    assert holds(facts, "location_id", "in", ["STORE-7", "WH-HAMBURG"])
    assert not holds(facts, "location_id", "in", ["WH-HAMBURG"])
    assert holds(facts, "location_id", "eq", "WH-BERLIN")
    assert holds(facts, "location_id", "not_in", ["WH-HAMBURG"])
    assert not holds(facts, "location_id", "ne", "STORE-7")


def test_location_id_before_routing_chose_any(order: OrderInput):
    facts = OrderFacts.of(order, [])
    assert not holds(facts, "location_id", "in", ["WH-BERLIN"])
    assert holds(facts, "location_id", "not_in", ["WH-BERLIN"])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_in_needs_a_list(op: str):
    with pytest.raises(ValidationError, match="needs a list"):
        RuleCondition(field="payment_method", op=op, value="card")


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_ordering_operators_need_a_numeric_field(op: str):
    with pytest.raises(ValidationError, match="compares numbers"):
        RuleCondition(field="payment_method", op=op, value="card")
    with pytest.raises(ValidationError):
        RuleCondition(field="sku", op=op, value="SKU-1")


def test_unknown_field_or_operator_is_rejected():
    with pytest.raises(ValidationError):
        RuleCondition(field="weight", op="eq", value="1")
    with pytest.raises(ValidationError):
        RuleCondition(field="order_total", op="between", value="1")
    with pytest.raises(ValidationError):
        RuleCondition(field="order_total", op="eq", value="1", extra="x")


def test_escalate_needs_escalate_to():
    with pytest.raises(ValidationError, match="escalate_to"):
        ApprovalReasonConfig(
            reason="slow", approvers=["alice"], timeout_seconds=60, timeout_action="escalate"
        )
    config = ApprovalReasonConfig(
        reason="slow",
        approvers=["alice"],
        timeout_seconds=60,
        timeout_action="escalate",
        escalate_to=["boss"],
    )
    assert config.escalate_to == ["boss"]


def test_reason_config_defaults_and_limits():
    config = ApprovalReasonConfig(reason="r", approvers=["a"])
    assert (config.rank, config.rule, config.timeout_action) == (1, None, "decline")
    with pytest.raises(ValidationError):
        ApprovalReasonConfig(reason="r", approvers=[])
    with pytest.raises(ValidationError):
        ApprovalReasonConfig(reason="r", approvers=["a"], rank=0)
    with pytest.raises(ValidationError):
        ApprovalReasonConfig(reason="r", approvers=["a"], timeout_seconds=0)
