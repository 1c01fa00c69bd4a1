"""A small OpenAPI 3.1 document built from the route tables and the contract types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api.configuration import (
    ChannelList,
    LocationList,
    StockAdjustments,
    StockSnapshot,
)
from api.fulfillment import DEFAULT_LIMIT, MAX_LIMIT, WorkOrderList
from api.keys import ApiKeyInput, NewApiKey, Rotation
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
    ("POST", "/v1/api-keys"): NewApiKey,
    ("POST", "/v1/api-keys/{key_id}/rotate"): Rotation,
}
WORK_ORDERS = "/v1/locations/{location_id}/work-orders"
RESPONSES: dict[tuple[str, str], type[BaseModel]] = {
    ("GET", "/v1/orders/{order_id}"): OrderView,
    ("GET", WORK_ORDERS): WorkOrderList,
}
QUERY_PARAMETERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", WORK_ORDERS): [
        {
            "name": "status",
            "in": "query",
            "required": False,
            "description": "comma list of OPEN, PICKED, SHIPPED, DELIVERED, BACKORDERED, "
            "CANCELLED (an unknown one: 422 unknown_status); without it: OPEN, PICKED, "
            "SHIPPED and those CANCELLED in the last 7 days",
            "schema": {"type": "string"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
    ],
}
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
            parameters = QUERY_PARAMETERS.get((route.method, route.path))
            if parameters is not None:
                op["parameters"] = parameters
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
