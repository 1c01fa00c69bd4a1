"""The OpenAPI 3.1 document: every route the app serves, with its path and query
parameters, request and response bodies (the pydantic types' JSON schemas, their
definitions under components/schemas), its error answers and the bearer scheme.

tests/unit/test_openapi.py walks the app's router and checks nothing is missing; `make
fuzz` (schemathesis) checks the answers match it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api import query
from api.configuration import (
    MAX_AVAILABILITY_SKUS,
    ChannelList,
    LocationList,
    StockAdjustments,
    StockSnapshot,
)
from api.docs import ASSET_ROUTE, ASSETS, CONTENT_TYPES, DOCS_PATH
from api.fulfillment import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    WORK_ORDER_KINDS,
    WorkOrderList,
    WorkOrderOut,
)
from api.keys import ApiKeyInput, NewApiKey, Rotation
from api.messages import AssignmentsRequest, CancelRequest, OrderRequest, PickRequest
from api.order_views import SOURCES
from api.orders import APPROVAL_STATUSES, MAX_LIST_LIMIT, ORDER_STATUSES
from api.receivers import ChannelsUpdated, LocationsUpdated, RotatedSecret, SecretRotation
from api.reports import PARAMETERS as REPORT_PARAMETERS
from api.reports import ReportSummary
from api.returns import DOCUMENTS as RETURN_DOCUMENTS
from api.returns import RETURN_STATUSES, ReceiveRequest, ReturnRequest
from api.tracking import TrackingRequest
from store.fulfillment import WORK_ORDER_STATUSES
from workflows.model import (
    ApprovalDecisionInput,
    ApprovalUpdateResult,
    DeliverReport,
    OrderCommandResult,
    OrderStatus,
    OrderView,
    ReceiveTransferReport,
    ResumeInput,
    ReturnOutcome,
    ReturnView,
    ShipReport,
    StoreReportResult,
)

# --------------------------------------------------------------------------- answers


class OrderAccepted(BaseModel):
    """A new order (201) or the same body sent again (200)."""

    order_id: str = Field(
        description="the OMS's id of the order: `{channel_order_id}@{sales_channel}` "
        "(a plain id for orders placed before ids were scoped by channel)"
    )
    channel_order_id: str = Field(description="the id the channel gave the order")
    sales_channel: str
    workflow_id: str
    run_id: str | None
    status: OrderStatus


class OrderSummary(BaseModel):
    order_id: str
    channel_order_id: str
    sales_channel: str
    customer_id: str
    status: OrderStatus
    total: str = Field(description="a decimal number as text")
    currency: str
    created_at: str
    updated_at: str


class OrderAnswer(OrderView):
    channel_order_id: str = Field(description="the id the channel gave the order")


class ReturnEntry(BaseModel):
    """A return: units coming back (CANCEL: cancelled before shipping; RETURN: sent back
    by the customer; RETURN_TO_SENDER: brought back by the carrier)."""

    return_id: str
    order_id: str
    type: str
    status: str = Field(description="OPEN, RECEIVED, EXPIRED (returns); DONE (cancels)")
    lines: list[dict[str, Any]]
    reason: str
    reason_code: str | None = None
    location_id: str | None = Field(default=None, description="the receiving location")
    created_at: str
    expires_at: str | None = None
    received: list[dict[str, Any]] = Field(
        default_factory=list, description="per line: quantity, condition, disposition"
    )
    refund_amount: str | None = None
    currency: str | None = None
    updated_at: str | None = None
    documents: dict[str, str] | None = Field(
        default=None, description="the return label and return note (PDF)"
    )
    dispositions: list[dict[str, Any]] | None = None


class TrackingEntry(BaseModel):
    event_id: str
    status: str
    at: str
    place: str | None
    detail: str | None


class TrackingRecorded(BaseModel):
    shipment_key: str
    recorded: int = Field(description="new events (a repeated event id counts once)")
    repeated: int
    told_order: int = Field(description="new events passed to the order (and its channel)")
    shipment_update: dict[str, str] | None = Field(
        default=None,
        description="the shipment step the events caused (report_delivery or "
        "report_returned_to_sender): done, or pending with the command to look up",
    )
    timeline: list[TrackingEntry] = Field(description="every event, in the order they happened")


class TrackingTimeline(BaseModel):
    shipment_key: str
    order_id: str
    status: str
    carrier: str | None
    tracking_number: str | None
    timeline: list[TrackingEntry]


class ReturnCreated(ReturnView):
    order_id: str
    documents: dict[str, str]


class ReturnPage(BaseModel):
    returns: list[ReturnEntry]
    total: int
    limit: int
    offset: int


class OrderPage(BaseModel):
    orders: list[OrderSummary]
    total: int
    limit: int
    offset: int


class CommandAccepted(BaseModel):
    """The command was sent but its outcome is not known yet: ask `poll`."""

    command_id: str
    status: Literal["pending"]
    poll: str


class CommandOutcome(BaseModel):
    command_id: str
    status: Literal["done", "failed"]
    result: Any = None
    error: dict[str, Any] | None = None


class RecordedDecisions(BaseModel):
    """The answer to an approval decision: the order's approvals and its status."""

    approvals: list[dict[str, Any]]
    status: OrderStatus


class PendingApprovals(BaseModel):
    approvals: list[dict[str, Any]]


class Updated(BaseModel):
    updated: int


class AdjustedStock(BaseModel):
    location_id: str
    sku: str
    on_hand: int
    applied: bool = Field(description="false: this adjustment_id was applied before")


class Adjusted(BaseModel):
    items: list[AdjustedStock]


class LocationAvailability(BaseModel):
    location_id: str
    on_hand: int
    reserved: int
    buffer: int
    atp: int


class SkuAvailability(BaseModel):
    sku: str
    atp: int
    locations: list[LocationAvailability]


class Availability(BaseModel):
    sales_channel: str | None
    items: list[SkuAvailability]


class Locations(BaseModel):
    locations: list[dict[str, Any]]


class SalesChannels(BaseModel):
    sales_channels: list[dict[str, Any]]


class ApiKeyEntry(BaseModel):
    """An API key's entry; `key` only in the answer that created it."""

    id: str
    name: str
    role: str
    identity: str


class ApiKeys(BaseModel):
    api_keys: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Any]


ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. not_found"},
                "message": {"type": "string"},
                "details": {"description": "field errors or other particulars, or null"},
            },
        }
    },
}
ERROR_TEXT = {
    400: "malformed JSON (invalid_json, json_too_deep, number_too_long), query "
    "(invalid_query) or path parameter (invalid_path)",
    401: "no API key, or an unknown, revoked or expired one",
    403: "the key's role may not do this",
    404: "not found (or not visible to this key)",
    409: "the order, shipment or key is not in a state that allows this, or "
    "(ambiguous_order_id) a channel's order id that names orders of several channels",
    413: "the body is larger than the API reads",
    415: "the body's Content-Type is not one this operation reads",
    422: "the body (or a reference in it) is invalid: `details` lists the fields",
    503: "a dependency (store, Temporal, a worker) is unavailable: retry after Retry-After",
}

# --------------------------------------------------------------------------- operations


@dataclass
class Operation:
    body: type[BaseModel] | None = None
    body_schema: dict[str, Any] | None = None  # instead of a model
    body_required: bool = True
    answers: dict[int, type[BaseModel] | dict[str, Any] | None] = field(default_factory=dict)
    parameters: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = (400, 401, 403, 404, 503)
    public: bool = False
    # more media types the body may have besides JSON (media type -> media object)
    other_bodies: dict[str, dict[str, Any]] = field(default_factory=dict)


BODY_ERRORS = (400, 401, 403, 404, 413, 422, 503)
COMMAND_ERRORS = (400, 401, 403, 404, 409, 413, 422, 503)
WORK_ORDERS = "/v1/locations/{location_id}/work-orders"
PDF = {"type": "string", "format": "binary"}
OBJECT: dict[str, Any] = {"type": "object"}
TEXT = {"type": "string"}
# /docs: an HTML page; its files (api/docs.py): a style sheet, scripts, icons
HTML = {"type": "string"}
DOCS_FILE = {"type": "string", "format": "binary"}


# PUT /v1/inventory: a stock snapshot of any size streamed as it is read (chunked
# uploads too), applied whole or not at all
_FEED = (
    "streamed into the store as it arrives, at most OMS_INVENTORY_MAX_BYTES (413 "
    "feed_too_large beyond); all of it is applied or, with any bad line, nothing: 422 "
    "invalid_feed with `details` [{line, field, message}] (the first 100) and the count in "
    "its message"
)
STOCK_FEEDS: dict[str, dict[str, Any]] = {
    "text/csv": {
        "schema": {
            "type": "string",
            "description": "a header line `location_id,sku,on_hand`, then one stock level a "
            "line; " + _FEED,
        },
        "example": "location_id,sku,on_hand\nWH-BERLIN,SKU-1,12\nST-HAMBURG,SKU-1,0\n",
    },
    "application/x-ndjson": {
        "schema": {
            "type": "string",
            "description": 'one JSON object a line, such as {"location_id": "WH-BERLIN", '
            '"sku": "SKU-1", "on_hand": 12} (also as application/jsonl or '
            "application/x-jsonlines); " + _FEED,
        },
    },
}


def _command(body: type[BaseModel], result: type[BaseModel], required: bool) -> Operation:
    """An update sent to a workflow: its result, or 202 while its outcome is not known."""
    return Operation(
        body=body,
        body_required=required,
        answers={200: result, 202: CommandAccepted},
        errors=COMMAND_ERRORS,
    )


def _list_parameters(default: int, maximum: int) -> list[dict[str, Any]]:
    return [
        query.int_parameter("limit", default, 1, maximum, "page size (400 outside the range)"),
        query.int_parameter("offset", 0, 0, query.MAX_OFFSET, "entries to skip"),
    ]


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/orders"): Operation(
        body=OrderRequest,
        answers={201: OrderAccepted, 200: OrderAccepted},
        errors=COMMAND_ERRORS,
    ),
    ("GET", "/v1/orders"): Operation(
        answers={200: OrderPage},
        parameters=[
            *_list_parameters(50, MAX_LIST_LIMIT),
            query.enum_parameter("status", ORDER_STATUSES, "only orders in this status"),
            query.identifier_parameter("sales_channel", "only this channel's orders (ops)"),
            query.identifier_parameter("customer_id", "only this customer's orders"),
        ],
    ),
    ("POST", "/v1/orders/{order_id}/returns"): Operation(
        body=ReturnRequest,
        answers={201: ReturnCreated, 202: CommandAccepted},
        errors=COMMAND_ERRORS,
    ),
    ("GET", "/v1/returns"): Operation(
        answers={200: ReturnPage},
        parameters=[
            *_list_parameters(100, 500),
            query.enum_parameter("status", RETURN_STATUSES, "only returns in this status"),
            query.identifier_parameter("location_id", "only returns to this location (ops)"),
            {
                "name": "order_id",
                "in": "query",
                "required": False,
                "description": "only this order's returns (its OMS id or the channel's id)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            },
        ],
    ),
    ("GET", "/v1/returns/{return_id}"): Operation(answers={200: ReturnEntry}),
    ("POST", "/v1/work-orders/{work_order_id}/{step}"): Operation(
        body_schema={"type": "object"},
        body_required=False,
        answers={200: {"type": "object"}, 202: CommandAccepted},
        errors=COMMAND_ERRORS,
    ),
    ("POST", "/v1/shipments/{shipment_key}/tracking"): Operation(
        body=TrackingRequest, answers={200: TrackingRecorded}, errors=COMMAND_ERRORS
    ),
    ("GET", "/v1/shipments/{shipment_key}/tracking"): Operation(answers={200: TrackingTimeline}),
    ("GET", "/v1/returns/{return_id}/{document}"): Operation(answers={200: PDF}),
    ("POST", "/v1/returns/{return_id}/receive"): _command(ReceiveRequest, ReturnOutcome, True),
    ("GET", "/v1/orders/{order_id}"): Operation(
        answers={200: OrderAnswer},
        errors=(400, 401, 403, 404, 409, 503),
        parameters=[
            query.enum_parameter(
                "source",
                SOURCES,
                "store: the projection (default); workflow: the live query (ops, admin)",
                "store",
            )
        ],
    ),
    ("POST", "/v1/orders/{order_id}/cancel"): _command(CancelRequest, OrderCommandResult, False),
    ("POST", "/v1/orders/{order_id}/resume"): _command(ResumeInput, OrderCommandResult, False),
    ("POST", "/v1/orders/{order_id}/assignments"): _command(
        AssignmentsRequest, OrderCommandResult, True
    ),
    ("POST", "/v1/orders/{order_id}/approvals"): _command(
        ApprovalDecisionInput, ApprovalUpdateResult, True
    ),
    ("GET", "/v1/reports/summary"): Operation(
        answers={200: ReportSummary},
        errors=(400, 401, 403, 503),
        parameters=REPORT_PARAMETERS,
    ),
    ("GET", "/v1/approvals"): Operation(
        answers={200: PendingApprovals},
        parameters=[
            query.enum_parameter("status", APPROVAL_STATUSES, "only pending is kept", "pending")
        ],
    ),
    ("GET", WORK_ORDERS): Operation(
        answers={200: WorkOrderList},
        errors=(400, 401, 403, 404, 422, 503),
        parameters=[
            {
                "name": "status",
                "in": "query",
                "required": False,
                "description": "comma list of "
                + ", ".join(WORK_ORDER_STATUSES)
                + " (an unknown one: 422 unknown_status); without it: OPEN, PICKED, "
                "SHIPPED and those CANCELLED in the last 7 days",
                "schema": {"type": "string", "maxLength": 200},
            },
            query.enum_parameter(
                "kind",
                WORK_ORDER_KINDS,
                "PACKAGING (default): the location's releases of orders; RETURN_TO_VENDOR: "
                "returned units to send to the vendor (statuses OPEN, SHIPPED)",
                "PACKAGING",
            ),
            *_list_parameters(DEFAULT_LIMIT, MAX_LIMIT),
        ],
    ),
    ("POST", "/v1/shipments/{shipment_key}/pick"): _command(PickRequest, StoreReportResult, True),
    ("POST", "/v1/shipments/{shipment_key}/ship"): _command(ShipReport, StoreReportResult, True),
    ("POST", "/v1/shipments/{shipment_key}/deliver"): _command(
        DeliverReport, StoreReportResult, False
    ),
    ("POST", "/v1/shipments/{shipment_key}/receive"): _command(
        ReceiveTransferReport, StoreReportResult, False
    ),
    ("GET", "/v1/shipments/{shipment_key}"): Operation(answers={200: WorkOrderOut}),
    ("GET", "/v1/documents/{document_id}"): Operation(answers={200: PDF}),
    ("PUT", "/v1/inventory"): Operation(
        body=StockSnapshot,
        answers={200: Updated},
        errors=(*BODY_ERRORS, 415),
        other_bodies=STOCK_FEEDS,
    ),
    ("POST", "/v1/inventory/adjustments"): Operation(
        body=StockAdjustments, answers={200: Adjusted}, errors=BODY_ERRORS
    ),
    ("GET", "/v1/availability"): Operation(
        answers={200: Availability},
        parameters=[
            {
                "name": "sku",
                "in": "query",
                "required": True,
                "description": f"the skus (repeated, or a comma list; at most "
                f"{MAX_AVAILABILITY_SKUS})",
                "style": "form",
                "explode": True,
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_AVAILABILITY_SKUS,
                    "items": {"type": "string", "pattern": f"^{query.IDENTIFIER.pattern}$"},
                },
            },
            {
                "name": "sales_channel",
                "in": "query",
                "required": False,
                "description": "the channel's view (its buffers and locations); a web "
                "shop key always sees its own",
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        ],
    ),
    ("GET", "/v1/locations"): Operation(answers={200: Locations}),
    ("PUT", "/v1/locations"): Operation(
        body=LocationList, answers={200: LocationsUpdated}, errors=BODY_ERRORS
    ),
    ("GET", "/v1/sales-channels"): Operation(answers={200: SalesChannels}),
    ("PUT", "/v1/sales-channels"): Operation(
        body=ChannelList, answers={200: ChannelsUpdated}, errors=BODY_ERRORS
    ),
    # a receiver's secret (api/receivers.py): the body is optional (default overlap)
    **{
        ("POST", path): Operation(
            body=SecretRotation,
            body_required=False,
            answers={200: RotatedSecret},
            errors=COMMAND_ERRORS,
        )
        for path in (
            "/v1/locations/{location_id}/webhook-secret/rotate",
            "/v1/sales-channels/{channel_id}/callback-secret/rotate",
            "/v1/sales-channels/{channel_id}/approval-reasons/{reason}/webhook-secret/rotate",
        )
    },
    ("PUT", "/v1/api-keys"): Operation(
        body=ApiKeyInput, answers={200: ApiKeyEntry}, errors=COMMAND_ERRORS
    ),
    ("POST", "/v1/api-keys"): Operation(
        body=NewApiKey, answers={201: ApiKeyEntry}, errors=BODY_ERRORS
    ),
    ("GET", "/v1/api-keys"): Operation(answers={200: ApiKeys}),
    ("POST", "/v1/api-keys/{key_id}/revoke"): Operation(
        answers={200: ApiKeyEntry}, errors=(400, 401, 403, 404, 409, 503)
    ),
    ("POST", "/v1/api-keys/{key_id}/rotate"): Operation(
        body=Rotation, body_required=False, answers={201: ApiKeyEntry}, errors=COMMAND_ERRORS
    ),
    ("GET", "/v1/commands/{command_id}"): Operation(
        answers={200: CommandOutcome, 202: CommandAccepted}, errors=(400, 401, 404, 409, 503)
    ),
    # the app's own routes (api/app.py), answered without a key (except /ready's 503)
    ("GET", "/health"): Operation(answers={200: Health}, errors=(), public=True),
    ("GET", "/ready"): Operation(answers={200: Readiness, 503: Readiness}, errors=(), public=True),
    ("GET", "/openapi.json"): Operation(answers={200: {"type": "object"}}, errors=(), public=True),
    ("GET", "/metrics"): Operation(answers={200: TEXT}, errors=(), public=True),
    ("GET", DOCS_PATH): Operation(answers={200: HTML}, errors=(), public=True),
    ("GET", ASSET_ROUTE): Operation(answers={200: DOCS_FILE}, errors=(400, 401, 404), public=True),
}
PUBLIC_HANDLERS = {
    "/health": "health",
    "/ready": "ready",
    "/openapi.json": "openapi",
    "/metrics": "metrics",
    DOCS_PATH: "docs_page",
    ASSET_ROUTE: "docs_asset",
}

# path parameters: what an id of each kind looks like (no leading dot: `.` and `..` are
# not path segments a client can send)
_ID = r"[A-Za-z0-9_:-][A-Za-z0-9._:-]"
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    # the OMS's id (`{channel_order_id}@{channel}`) or the channel's own id
    "order_id": {"type": "string", "pattern": f"^{_ID}{{0,63}}(@{_ID}{{0,63}})?$"},
    "location_id": {"type": "string", "pattern": f"^{_ID}{{0,63}}$"},
    # made from the order id, `@` included
    "shipment_key": {"type": "string", "pattern": r"^[A-Za-z0-9_:-][A-Za-z0-9._:@-]{0,399}$"},
    "document_id": {"type": "string", "pattern": r"^[A-Za-z0-9_:-][A-Za-z0-9._:@-]{0,399}$"},
    "return_id": {"type": "string", "pattern": r"^[A-Za-z0-9_:-][A-Za-z0-9._:@-]{0,399}$"},
    "work_order_id": {"type": "string", "pattern": r"^[A-Za-z0-9_:-][A-Za-z0-9._:@-]{0,399}$"},
    "step": {"type": "string", "enum": ["pick", "ship", "deliver"]},
    "document": {"type": "string", "enum": sorted(RETURN_DOCUMENTS)},
    "command_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,1024}$"},
    "key_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "channel_id": {"type": "string", "pattern": f"^{_ID}{{0,63}}$"},
    "reason": {"type": "string", "minLength": 1, "maxLength": 64},
    "asset": {"type": "string", "enum": list(ASSETS)},
}
# a parameter not listed above (a route added since): any text of a path segment
ANY_SEGMENT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
_PLACEHOLDER = re.compile(r"\{([^}/]+)\}")


def _content(schema: Any, media: str = "application/json") -> dict[str, Any]:
    if schema is DOCS_FILE:
        return {media: {"schema": schema} for media in sorted(set(CONTENT_TYPES.values()))}
    if schema is HTML:
        media = "text/html"
    elif schema is PDF:
        media = "application/pdf"
    elif schema is TEXT:
        media = "text/plain"
    return {media: {"schema": schema}}


def _operation(method: str, path: str) -> Operation:
    """The operation's entry; a route without one (added since) is still described: a
    JSON object in and out (tests/unit/test_openapi.py asks for a precise entry)."""
    found = OPERATIONS.get((method, path))
    if found is not None:
        return found
    writes = method in ("POST", "PUT", "PATCH")
    return Operation(
        body_schema=OBJECT if writes else None,
        body_required=False,
        answers={200: OBJECT, 201: OBJECT},
        errors=COMMAND_ERRORS if writes else (400, 401, 403, 404, 503),
    )


def openapi_document(tables: Iterable[web.RouteTableDef]) -> dict[str, Any]:
    """The document for these route tables and the app's own routes (PUBLIC_HANDLERS)."""
    routes: list[tuple[str, str, str, str]] = [
        ("GET", path, name, "") for path, name in PUBLIC_HANDLERS.items()
    ]
    for table in tables:
        for route in table:
            if isinstance(route, web.RouteDef):
                doc = (route.handler.__doc__ or "").strip()
                routes.append((route.method, route.path, route.handler.__name__, doc))
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for method, path, _, _ in routes:
        op = _operation(method, path)
        if op.body is not None:
            models.append((op.body, "validation"))
        for answer in op.answers.values():
            model = _model(answer)
            if model is not None:
                models.append((model, "serialization"))
    refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")

    paths: dict[str, dict[str, Any]] = {}
    for method, path, name, doc in routes:
        op = _operation(method, path)
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": (doc.splitlines()[0] if doc else name.replace("_", " ")),
            "responses": {},
        }
        if doc:
            operation["description"] = doc
        if not op.public:
            operation["security"] = [{"bearer": []}]
        parameters = [
            {
                "name": param,
                "in": "path",
                "required": True,
                "schema": PATH_PARAMETERS.get(param, ANY_SEGMENT),
            }
            for param in _PLACEHOLDER.findall(path)
        ] + op.parameters
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None or op.body_schema is not None:
            body = refs[(op.body, "validation")] if op.body is not None else op.body_schema
            operation["requestBody"] = {"required": op.body_required, "content": _content(body)}
            operation["requestBody"]["content"].update(op.other_bodies)
        for status, answer in op.answers.items():
            model = _model(answer)
            schema = refs[(model, "serialization")] if model is not None else answer
            described: dict[str, Any] = {"description": _describe(status, answer)}
            if schema is not None:
                described["content"] = _content(schema)
            operation["responses"][str(status)] = described
        errors = op.errors if op.public else tuple(sorted({*op.errors, 400, 401, 503}))
        for status in errors:
            response: dict[str, Any] = {
                "description": ERROR_TEXT[status],
                "content": _content({"$ref": "#/components/schemas/Error"}),
            }
            if status == 503:
                response["headers"] = {
                    "Retry-After": {
                        "description": "seconds to wait before retrying",
                        "schema": {"type": "string"},
                    }
                }
            operation["responses"][str(status)] = response
        paths.setdefault(path, {})[method.lower()] = operation
    schemas = dict(definitions.get("$defs", {}))
    schemas["Error"] = ERROR
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OMS on Temporal",
            "version": "1",
            "description": 'Errors are `{"error": {code, message, details}}`. Bodies '
            "nest at most 32 levels and numbers have at most 40 characters (400); "
            "a wrong method is 405 with an Allow header.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key (role: webshop, approver, location, ops, admin)",
                }
            },
        },
        "paths": paths,
    }


def _model(answer: object) -> type[BaseModel] | None:
    return answer if isinstance(answer, type) and issubclass(answer, BaseModel) else None


def _describe(status: int, answer: object) -> str:
    if status == 202:
        return "sent; the outcome is not known yet (poll the command)"
    model = _model(answer)
    if model is not None and model.__doc__:
        return model.__doc__.strip().splitlines()[0]
    return {200: "OK", 201: "created", 503: "not ready"}.get(status, "OK")
