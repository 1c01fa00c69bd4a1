"""The OpenAPI document describes every route the app registers: its path and query
parameters, request and response bodies, error answers and the bearer scheme, with every
reference resolving (so a fuzzer reaches every endpoint)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from api.app import ROUTE_TABLES, init_app
from api.openapi import OPERATIONS, openapi_document
from workers.settings import Settings

BODYLESS_WRITES = {("POST", "/v1/api-keys/{key_id}/revoke")}


def registered_routes() -> set[tuple[str, str]]:
    app = init_app(Settings(database_url="sqlite+aiosqlite:///:memory:", env="development"))
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp's automatic HEAD for every GET
            continue
        assert isinstance(route.resource, web.AbstractResource)
        if route.resource.canonical.startswith("/ui"):  # the back office's HTML pages
            continue
        found.add((route.method, route.resource.canonical))
    return found


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def references(node: Any) -> list[str]:
    found: list[str] = []
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.append(ref)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    routes = registered_routes()
    documented = set(operations(openapi_document(ROUTE_TABLES)))
    assert routes - documented == set(), "routes the document misses"
    assert documented - routes == set(), "operations the app does not serve"
    assert len(routes) >= 30
    # each with its own entry: its body and answer types, not the fallback's plain object
    assert routes - set(OPERATIONS) == set(), "routes without an entry in api/openapi.py"


def test_each_operation_has_parameters_bodies_answers_and_security() -> None:
    doc = openapi_document(ROUTE_TABLES)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    public = {"/health", "/ready", "/openapi.json", "/metrics", "/docs", "/docs/{asset}"}
    ids: set[str] = set()
    for (method, path), op in operations(doc).items():
        where = f"{method} {path}"
        assert op["operationId"] not in ids, where
        ids.add(op["operationId"])
        # path parameters: each placeholder declared, required, with a schema
        declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        assert set(declared) == set(re.findall(r"\{([^}]+)\}", path)), where
        assert all(p["required"] and p["schema"] for p in declared.values()), where
        # request bodies: every write reads one (as JSON), described by a schema
        if method in ("POST", "PUT") and (method, path) not in BODYLESS_WRITES:
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body, where
        # a success answer with its content, and the error answers with the error JSON
        successes = [s for s in op["responses"] if s.startswith("2")]
        assert successes, where
        for status in successes:
            assert op["responses"][status]["content"], (where, status)
        if path in public:
            assert "security" not in op, where
            continue
        assert op["security"] == [{"bearer": []}], where
        for status in ("400", "401", "503"):
            error = op["responses"][status]["content"]["application/json"]["schema"]
            assert resolve(doc, error["$ref"])["required"] == ["error"], where
        assert "Retry-After" in op["responses"]["503"]["headers"], where
        if "requestBody" in op:
            assert {"413", "422"} <= set(op["responses"]), where


def test_query_parameters_are_declared_with_their_bounds() -> None:
    ops = operations(openapi_document(ROUTE_TABLES))

    def params(method: str, path: str) -> dict[str, dict[str, Any]]:
        return {
            p["name"]: p for p in ops[(method, path)].get("parameters", []) if p["in"] == "query"
        }

    orders = params("GET", "/v1/orders")
    assert set(orders) == {"limit", "offset", "status", "sales_channel", "customer_id"}
    assert orders["limit"]["schema"]["maximum"] == 500
    assert orders["offset"]["schema"]["maximum"] < 2**63
    assert "CANCELLED" in orders["status"]["schema"]["enum"]
    work_orders = params("GET", "/v1/locations/{location_id}/work-orders")
    assert set(work_orders) == {"status", "kind", "limit", "offset"}
    assert work_orders["kind"]["schema"]["enum"] == ["PACKAGING", "TRANSFER", "RETURN_TO_VENDOR"]
    availability = params("GET", "/v1/availability")
    assert availability["sku"]["required"] is True
    assert availability["sku"]["schema"]["maxItems"] == 200
    assert set(params("GET", "/v1/orders/{order_id}")) == {"source"}
    assert set(params("GET", "/v1/approvals")) == {"status"}


def test_every_reference_resolves_to_a_schema() -> None:
    doc = openapi_document(ROUTE_TABLES)
    refs = references(doc)
    assert len(refs) > 50
    for ref in refs:
        target = resolve(doc, ref)
        assert isinstance(target, dict) and target, ref
    # and no schema points outside the document (pydantic's own #/$defs)
    assert not [r for r in refs if not r.startswith("#/components/schemas/")]
