"""A small OpenAPI 3.1 document built from the route tables and the contract types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api.configuration import (
    ApiKeyInput,
    ChannelList,
    LocationList,
    StockAdjustments,
    StockSnapshot,
)
from api.messages import AssignmentsRequest, CancelRequest, OrderRequest, PickRequest
from workflows.model import (
    ApprovalDecisionInput,
    DeliverReport,
    OrderView,
    ResumeInput,
    ShipReport,
)

REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/orders"): OrderRequest,
    ("POST", "/v1/orders/{order_id}/cancel"): CancelRequest,
    ("POST", "/v1/orders/{order_id}/resume"): ResumeInput,
    ("POST", "/v1/orders/{order_id}/approvals"): ApprovalDecisionInput,
    ("POST", "/v1/orders/{order_id}/assignments"): AssignmentsRequest,
    ("POST", "/v1/shipments/{shipment_key}/pick"): PickRequest,
    ("POST", "/v1/shipments/{shipment_key}/ship"): ShipReport,
    ("POST", "/v1/shipments/{shipment_key}/deliver"): DeliverReport,
    # configuration: the strict write schemas (api/schemas.py)
    ("PUT", "/v1/locations"): LocationList,
    ("PUT", "/v1/sales-channels"): ChannelList,
    ("PUT", "/v1/inventory"): StockSnapshot,
    ("POST", "/v1/inventory/adjustments"): StockAdjustments,
    ("PUT", "/v1/api-keys"): ApiKeyInput,
}
RESPONSES: dict[tuple[str, str], type[BaseModel]] = {("GET", "/v1/orders/{order_id}"): OrderView}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def openapi_document(tables: Iterable[web.RouteTableDef]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for table in tables:
        for route in table:
            if not isinstance(route, web.RouteDef):
                continue
            op: dict[str, Any] = {
                "operationId": route.handler.__name__,
                "summary": (route.handler.__doc__ or route.handler.__name__).strip(),
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "OK"},
                    "4XX": {
                        "description": "error",
                        "content": {"application/json": {"schema": ERROR}},
                    },
                },
            }
            body = REQUEST_BODIES.get((route.method, route.path))
            if body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body.model_json_schema()}},
                }
            answer = RESPONSES.get((route.method, route.path))
            if answer is not None:
                op["responses"]["200"]["content"] = {
                    "application/json": {"schema": answer.model_json_schema()}
                }
            paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "OMS on Temporal", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
