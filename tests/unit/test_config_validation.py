"""Configuration and message validation: the API's strict schemas refuse what could poison
an order; the durable types workers read back tolerate fields they do not know."""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.configuration import ChannelList, LocationList
from api.errors import loads, unstorable_text
from api.messages import AssignmentsRequest as AssignmentsInput
from api.messages import CancelRequest as CancelInput
from api.messages import PickRequest as PickReport
from api.openapi import openapi_document
from api.schemas import (
    MAX_CHANNEL_JSON_BYTES,
    MAX_WAIT_SECONDS,
    ApprovalReasonConfigIn,
    ApprovalRuleIn,
    LocationConfigIn,
    RoutingWeightsIn,
    RuleConditionIn,
    SalesChannelConfigIn,
    http_url,
)
from workers.seed import CHANNELS, LOCATIONS
from workflows.model import (
    ApprovalReasonConfig,
    ApprovalRule,
    LocationConfig,
    RoutingWeights,
    RuleCondition,
    SalesChannelConfig,
    ValidateOrderResult,
)

HISTORIES = Path(__file__).parent.parent / "histories"
PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (LocationConfig, LocationConfigIn),
    (SalesChannelConfig, SalesChannelConfigIn),
    (ApprovalReasonConfig, ApprovalReasonConfigIn),
    (ApprovalRule, ApprovalRuleIn),
    (RuleCondition, RuleConditionIn),
    (RoutingWeights, RoutingWeightsIn),
]


def channel(**fields: Any) -> dict[str, Any]:
    return {"channel_id": "web", **fields}


def location(**fields: Any) -> dict[str, Any]:
    return {"location_id": "WH-1", "name": "one", "lat": 52.5, "lon": 13.4, **fields}


def reason(**fields: Any) -> dict[str, Any]:
    return {"reason": "credit", "approvers": ["alice"], **fields}


def refused(model: type[BaseModel], data: Any) -> list[str]:
    """The dotted fields of the errors; fails when the data is accepted."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


# --------------------------------------------------------------------------- durable vs API


@pytest.mark.parametrize(("durable", "strict"), PAIRS, ids=[d.__name__ for d, _ in PAIRS])
def test_each_api_schema_refines_its_durable_type(
    durable: type[BaseModel], strict: type[BaseModel]
) -> None:
    assert issubclass(strict, durable)
    assert strict.model_fields.keys() == durable.model_fields.keys()
    assert strict.model_config.get("extra") == "forbid"
    assert strict.model_config.get("allow_inf_nan") is False


def test_durable_config_ignores_unknown_fields_at_every_level() -> None:
    newer = json.dumps(
        channel(
            added_later=1,
            routing_weights={"distance": 2, "carbon": 5},
            approval_reasons=[
                reason(
                    sla="gold",
                    rule={
                        "match": "any",
                        "mode": "x",
                        "conditions": [
                            {"field": "sku", "op": "eq", "value": "S-1", "case_insensitive": True}
                        ],
                    },
                )
            ],
        )
    )
    config = SalesChannelConfig.model_validate_json(newer)
    assert config.routing_weights.distance == 2
    rule = config.approval_reasons[0].rule
    assert rule is not None and rule.conditions[0].value == "S-1"
    # the same payload inside the activity result a workflow reads from its history
    result = ValidateOrderResult.model_validate_json(f'{{"channel": {newer}, "future": []}}')
    assert result.channel == config
    location_json = json.dumps(location(dock_doors=4))
    assert LocationConfig.model_validate_json(location_json).location_id == "WH-1"


def test_the_api_refuses_unknown_fields_at_every_level() -> None:
    assert refused(SalesChannelConfigIn, channel(typo=1)) == ["typo"]
    assert refused(SalesChannelConfigIn, channel(routing_weights={"distanse": 1})) == [
        "routing_weights.distanse"
    ]
    assert refused(SalesChannelConfigIn, channel(approval_reasons=[reason(aprovers=["x"])])) == [
        "approval_reasons.0.aprovers"
    ]
    condition = {"field": "sku", "op": "eq", "value": "S", "vaule": "T"}
    assert refused(
        SalesChannelConfigIn,
        channel(approval_reasons=[reason(rule={"conditions": [condition]})]),
    ) == ["approval_reasons.0.rule.conditions.0.vaule"]
    assert refused(LocationConfigIn, location(webhok_url="https://x.example")) == ["webhok_url"]


def test_a_rule_condition_built_directly_still_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        RuleCondition.model_validate({"field": "sku", "op": "eq", "value": "S", "x": 1})


def test_recorded_histories_channel_payloads_read_with_both_types() -> None:
    found = 0
    for path in sorted(HISTORIES.glob("order_*.json")):
        for data in _payloads(path.read_text()):
            if '"channel"' in data and '"channel_id"' in data:
                result = ValidateOrderResult.model_validate_json(data)
                assert result.channel is not None
                # what was stored then is still a valid write now
                SalesChannelConfigIn.model_validate(result.channel.model_dump())
                found += 1
    assert found >= 1


def _payloads(history: str) -> list[str]:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                try:
                    out.append(base64.b64decode(node["data"]).decode())
                except (ValueError, UnicodeDecodeError):
                    pass
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history))
    return out


def test_strict_instances_are_what_the_store_and_workers_read_back() -> None:
    written = SalesChannelConfigIn.model_validate(
        channel(
            approval_reasons=[
                reason(
                    webhook_url="https://erp.example.com/approvals",
                    rule={"conditions": [{"field": "order_total", "op": "gt", "value": 50}]},
                )
            ],
            callback_url="http://127.0.0.1:9000/cb",
            safety_buffers={"store": 2},
            fraud_total_threshold="1000.00",
        )
    )
    assert isinstance(written, SalesChannelConfig)
    stored = written.model_dump(mode="json")
    assert SalesChannelConfig.model_validate(stored).model_dump(mode="json") == stored
    assert ChannelList.model_validate([stored]).root[0].model_dump(mode="json") == stored


def test_the_demo_configuration_is_a_valid_write() -> None:
    for config in CHANNELS:
        SalesChannelConfigIn.model_validate(config.model_dump())
    for loc in LOCATIONS:
        LocationConfigIn.model_validate(loc.model_dump())


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize(
    "field",
    ["backorder_retry_seconds", "max_distance_km", "fraud_total_threshold"],
)
def test_non_finite_channel_numbers_are_refused(field: str, bad: float) -> None:
    assert refused(SalesChannelConfigIn, channel(**{field: bad})) == [field]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"backorder_retry_seconds": 1e308}, "backorder_retry_seconds"),
        ({"backorder_retry_seconds": MAX_WAIT_SECONDS + 1}, "backorder_retry_seconds"),
        ({"backorder_retry_seconds": 0}, "backorder_retry_seconds"),
        ({"backorder_retry_seconds": -1}, "backorder_retry_seconds"),
        ({"backorder_max_attempts": 1001}, "backorder_max_attempts"),
        ({"backorder_max_attempts": -1}, "backorder_max_attempts"),
        ({"max_distance_km": 40_001}, "max_distance_km"),
        ({"routing_weights": {"stock": math.inf}}, "routing_weights.stock"),
        ({"routing_weights": {"stock": 1001}}, "routing_weights.stock"),
        ({"safety_buffers": {"store": 1_000_001}}, "safety_buffers.store"),
        ({"safety_buffers": {"store": -1}}, "safety_buffers.store"),
        ({"safety_buffers": {"bad key!": 1}}, "safety_buffers.bad key!.[key]"),
        ({"fraud_total_threshold": "0.001"}, "fraud_total_threshold"),
        ({"return_window_days": 366}, "return_window_days"),
        ({"document_kinds": ["delivery_note", "delivery_note"]}, "document_kinds"),
        ({"excluded_locations": ["WH-1"] * 1001}, "excluded_locations"),
        ({"approval_reasons": [reason(timeout_seconds=math.inf)]}, "approval_reasons.0"),
        (
            {"approval_reasons": [reason(timeout_seconds=MAX_WAIT_SECONDS * 2)]},
            "approval_reasons.0.timeout_seconds",
        ),
        ({"approval_reasons": [reason(rank=101)]}, "approval_reasons.0.rank"),
        ({"approval_reasons": [reason(approvers=[""])]}, "approval_reasons.0.approvers.0"),
        (
            {"approval_reasons": [reason(escalate_to=["x"] * 51)]},
            "approval_reasons.0.escalate_to",
        ),
        (
            {"approval_reasons": [reason(reason=f"r{i}") for i in range(21)]},
            "approval_reasons",
        ),
    ],
)
def test_absurd_channel_values_are_refused(fields: dict[str, Any], where: str) -> None:
    assert any(f.startswith(where) for f in refused(SalesChannelConfigIn, channel(**fields)))


def test_limits_themselves_are_accepted() -> None:
    config = SalesChannelConfigIn.model_validate(
        channel(
            backorder_retry_seconds=MAX_WAIT_SECONDS,
            backorder_max_attempts=1000,
            safety_buffers={"store": 1_000_000, "WH-1": 0},
            routing_weights={"distance": 1000, "cost": 0},
            max_distance_km=40_000,
            approval_reasons=[reason(timeout_seconds=MAX_WAIT_SECONDS, rank=100)],
        )
    )
    assert config.backorder_retry_seconds == MAX_WAIT_SECONDS


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"lat": math.nan}, "lat"),
        ({"lon": math.inf}, "lon"),
        ({"daily_capacity": 2**31}, "daily_capacity"),
        ({"priority": 10**7}, "priority"),
        ({"priority": -(10**7)}, "priority"),
        ({"cost_per_shipment": math.inf}, "cost_per_shipment"),
        ({"cost_per_shipment": 1e7}, "cost_per_shipment"),
        ({"lead_time_days": 61}, "lead_time_days"),
        ({"channels": ["web"] * 1001}, "channels"),
        ({"channels": ["not an id"]}, "channels.0"),
        ({"delivery_types": ["ship", "ship"]}, "delivery_types"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "x" * 65}, "time_zone"),
    ],
)
def test_absurd_location_values_are_refused(fields: dict[str, Any], where: str) -> None:
    assert refused(LocationConfigIn, location(**fields)) == [where]


def test_a_channel_too_large_for_a_history_is_refused() -> None:
    values = [f"SKU-{i:06d}-{'x' * 150}" for i in range(500)]
    condition = {"field": "sku", "op": "in", "value": values}
    reasons = [reason(reason=f"r{i}", rule={"conditions": [condition] * 5}) for i in range(2)]
    with pytest.raises(ValidationError, match=f"at most {MAX_CHANNEL_JSON_BYTES}"):
        SalesChannelConfigIn.model_validate(channel(approval_reasons=reasons))
    too_many = {**condition, "value": values * 2}
    fields = refused(
        SalesChannelConfigIn, channel(approval_reasons=[reason(rule={"conditions": [too_many]})])
    )
    assert fields and all(
        f.startswith("approval_reasons.0.rule.conditions.0.value") for f in fields
    )


def test_strict_json_refuses_nan_and_infinity_but_reads_overflow_as_inf() -> None:
    for text in ('{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}'):
        with pytest.raises(ValueError, match="not a JSON number"):
            loads(text)
    body = loads('[{"channel_id": "web", "backorder_retry_seconds": 1e400}]')
    assert refused(ChannelList, body) == ["0.backorder_retry_seconds"]
    assert loads('{"x": 1.5}') == {"x": 1.5}


def test_text_no_database_stores_is_found_wherever_it_is() -> None:
    body = loads(
        '[{"name": "a\\u0000b", "ok": "Gr\\u00fc\\u00dfe \\ud83d\\ude00",'
        ' "buffers": {"\\ud800": 1}, "list": ["x", "\\udfff"]}]'
    )
    found = unstorable_text(body)
    assert [p["field"] for p in found] == ["0.buffers.\\ud800", "0.list.1", "0.name"]
    assert all(p["type"] == "invalid_text" for p in found)
    assert unstorable_text({"name": "Grüße 😀", "n": [1, 2.5, None, True]}) == []
    assert len(unstorable_text(["\x00"] * 1000)) == 20


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "url",
    [
        "https://erp.example.com/approvals?x=1&y=2",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:9000/",
        "HTTPS://Example.COM",
    ],
)
def test_http_urls_are_kept_as_given(url: str) -> None:
    assert http_url(url) == url
    assert SalesChannelConfigIn.model_validate(channel(callback_url=url)).callback_url == url


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://files.example.com/",
        "data:text/plain,hi",
        "http://",
        "https:///path",
        "example.com/hook",
        "//example.com/hook",
        "http://exa mple.com/",
        "http://example.com/\r\nX: 1",
        "http://example.com:99999/",
        "",
        "https://" + "a" * 500 + ".com",
    ],
)
def test_other_urls_are_refused_everywhere(url: str) -> None:
    assert refused(SalesChannelConfigIn, channel(callback_url=url)) == ["callback_url"]
    assert refused(SalesChannelConfigIn, channel(approval_reasons=[reason(webhook_url=url)])) == [
        "approval_reasons.0.webhook_url"
    ]
    assert refused(LocationConfigIn, location(webhook_url=url)) == ["webhook_url"]


# --------------------------------------------------------------------------- messages


def test_cancel_names_one_to_500_lines_each_once() -> None:
    assert CancelInput.model_validate({}).line_ids is None
    assert CancelInput.model_validate({"line_ids": None}).line_ids is None
    assert CancelInput.model_validate({"line_ids": ["2", "1", "2"]}).line_ids == ["2", "1"]
    assert refused(CancelInput, {"line_ids": []}) == ["line_ids"]
    assert refused(CancelInput, {"line_ids": [str(i) for i in range(501)]}) == ["line_ids"]
    assert refused(CancelInput, {"line_ids": ["x" * 65]}) == ["line_ids.0"]
    assert refused(CancelInput, {"line_ids": ["a b"]}) == ["line_ids.0"]
    assert refused(CancelInput, {"line_ids": [7]}) == ["line_ids.0"]
    assert refused(CancelInput, {"reason": 7}) == ["reason"]


def test_a_long_cancel_reason_is_cut_not_refused() -> None:
    """Orders build reasons of their own (every routing reason of a not-announced order);
    refusing one inside a workflow would fail its task for ever."""
    assert CancelInput(reason="r" * 2000).reason == "r" * 2000
    cut = CancelInput(reason="not announced: " + "; ".join(["line x: no stock"] * 500)).reason
    assert len(cut) == 2000 and cut.startswith("not announced: line x") and cut.endswith("\u2026")
    assert len(CancelInput.model_validate_json(f'{{"reason": "{"r" * 100_000}"}}').reason) == 2000


def test_the_cancel_reason_of_a_decline_fits() -> None:
    """workflows/order_approval.py cancels a declined order with
    '<reason> <status> by <approver>: <comment>'; at their limits it must still validate."""
    text = f"{'r' * 64} timed_out by {'a' * 100}: {'c' * 1000}"
    assert CancelInput(reason=text).reason == text


def test_pick_report_is_bounded_and_names_each_line_once() -> None:
    line = {"line_id": "1", "picked_quantity": 1}
    assert len(PickReport.model_validate({"lines": [line]}).lines) == 1
    assert refused(PickReport, {"lines": []}) == ["lines"]
    assert refused(PickReport, {"lines": [line, line]}) == ["lines"]
    many = [{"line_id": f"L{i}", "picked_quantity": 1} for i in range(501)]
    assert refused(PickReport, {"lines": many}) == ["lines"]
    assert refused(PickReport, {"lines": [{**line, "picked_quantity": "1"}]}) == [
        "lines.0.picked_quantity"
    ]
    assert refused(PickReport, {"lines": [{**line, "picked_quantity": True}]}) == [
        "lines.0.picked_quantity"
    ]
    assert refused(PickReport, {"lines": [{**line, "line_id": "x" * 65}]}) == ["lines.0.line_id"]


def test_assignments_name_each_line_and_location_pair_once() -> None:
    pair = {"line_id": "1", "location_id": "WH-1"}
    AssignmentsInput.model_validate({"assignments": [pair, {**pair, "location_id": "WH-2"}]})
    assert refused(AssignmentsInput, {"assignments": [pair, pair]}) == ["assignments"]
    assert refused(AssignmentsInput, {"assignments": [pair] * 501}) == ["assignments"]
    assert refused(AssignmentsInput, {"assignments": [{**pair, "quantity": 0}]}) == [
        "assignments.0.quantity"
    ]
    assert refused(AssignmentsInput, {"assignments": [{**pair, "quantity": "2"}]}) == [
        "assignments.0.quantity"
    ]


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_documents_the_strict_configuration_schemas() -> None:
    from api.app import ROUTE_TABLES

    document = openapi_document(ROUTE_TABLES)
    paths, components = document["paths"], document["components"]["schemas"]
    for path, model in [("/v1/sales-channels", ChannelList), ("/v1/locations", LocationList)]:
        schema = paths[path]["put"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}
        # the document's copy is the model's own schema, its references under components
        expected = model.model_json_schema()
        expected.pop("$defs", None)
        found = components[model.__name__]
        assert found["maxItems"] == expected["maxItems"]
        item = found["items"]["$ref"].rsplit("/", 1)[-1]
        assert expected["items"]["$ref"].endswith(f"/{item}")
    channel_schema = components["SalesChannelConfigIn"]
    assert channel_schema["additionalProperties"] is False
    assert channel_schema["properties"]["backorder_retry_seconds"]["maximum"] == MAX_WAIT_SECONDS
    cancel = paths["/v1/orders/{order_id}/cancel"]["post"]["requestBody"]
    ref = cancel["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    line_ids = components[ref]["properties"]["line_ids"]
    array = next(s for s in line_ids["anyOf"] if s.get("type") == "array")
    assert (array["minItems"], array["maxItems"]) == (1, 500)


def test_money_threshold_is_a_decimal() -> None:
    config = SalesChannelConfigIn.model_validate(channel(fraud_total_threshold="99.99"))
    assert config.fraud_total_threshold == Decimal("99.99")
