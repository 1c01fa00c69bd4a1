"""The contract: pydantic types exchanged by workflows, activities and the API.

Every workflow, activity, signal and update takes one input object and returns one
result object, so fields can be added later without breaking running histories.
Money is Decimal (a decimal string on the wire); quantities are positive integers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

# --------------------------------------------------------------------------- statuses


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    ON_HOLD = "ON_HOLD"
    ROUTING = "ROUTING"
    CHECK_ANNOUNCED = "CHECK_ANNOUNCED"
    NOT_ANNOUNCED = "NOT_ANNOUNCED"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    DECLINED = "DECLINED"
    APPROVED = "APPROVED"
    RESPONDED = "RESPONDED"
    DOCUMENTED = "DOCUMENTED"
    SUBMITTED = "SUBMITTED"
    IN_FULFILLMENT = "IN_FULFILLMENT"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    # click and collect: every unit not yet handed over waits at the pickup store
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    DELIVERED = "DELIVERED"
    PARTIALLY_RETURNED = "PARTIALLY_RETURNED"
    RETURNED = "RETURNED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class LineStatus(StrEnum):
    CREATED = "CREATED"
    SCHEDULED = "SCHEDULED"
    RELEASED = "RELEASED"
    BACKORDERED = "BACKORDERED"
    # click and collect from another location: on the way to the pickup store, then there
    IN_TRANSFER = "IN_TRANSFER"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    RETURNED = "RETURNED"


class ApprovalStatus(StrEnum):
    WAITING = "waiting"  # a later rank: not requested until every lower rank approved
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"  # another reason declined while this one was open
    SKIPPED = "skipped"  # its rule does not match the order


class ReleaseStatus(StrEnum):
    RELEASED = "RELEASED"
    PICKED = "PICKED"
    BACKORDERED = "BACKORDERED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    CANCELLED = "CANCELLED"


class ShipmentStatus(StrEnum):
    # a pickup store's hand-over of transferred units: until the transfer arrives
    AWAITING_TRANSFER = "AWAITING_TRANSFER"
    OPEN = "OPEN"
    PICKED = "PICKED"
    BACKORDERED = "BACKORDERED"
    SHIPPED = "SHIPPED"
    # the transferred units are at the pickup store, waiting for the customer
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    DELIVERED = "DELIVERED"
    # the carrier could not deliver it and brings it back to the location
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    CANCELLED = "CANCELLED"


DocumentKind = Literal["delivery_note", "return_note", "return_label"]
ProgressKind = Literal[
    "released",
    "picked",
    "shipped",
    "delivered",
    "cancelled",
    "returned_to_sender",
    # a TRANSFER release (click and collect from another location): shipped to the pickup
    # store, then received there
    "in_transfer",
    "ready_for_pickup",
]
# strict: a JSON string "2" or `true` is not a quantity
MAX_ORDER_TOTAL = Decimal("1000000000000")  # the store keeps 14 digits, 2 decimals
PositiveQty = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
# An order's OMS id, `{channel_order_id}@{channel}` (oms/ids.py) or a plain id from before;
# the API checks the channel's part is an identifier
OrderId = Annotated[str, Field(min_length=1, max_length=200)]
# the most lines one message (cancel, pick report, assignments) may name: an order's maximum
MAX_MESSAGE_LINES = 500


class _Strict(BaseModel):
    """Inputs from outside reject unknown fields so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- order body


class Customer(_Strict):
    id: Identifier
    email: str | None = Field(default=None, max_length=254)
    name: str | None = Field(default=None, max_length=200)


class Address(_Strict):
    name: str | None = Field(default=None, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class OrderLineInput(_Strict):
    line_id: Identifier
    sku: Identifier
    quantity: PositiveQty
    unit_price: Money
    # printed on delivery and return notes
    description: str | None = Field(default=None, max_length=200)

    @field_validator("description")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("printed on documents: no line breaks or control characters")
        return value


class Payment(_Strict):
    method: str = Field(min_length=1, max_length=32)
    amount: Money
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    authorized: bool = False


class Delivery(_Strict):
    type: Literal["ship", "pickup"] = "ship"
    ship_complete: bool = False
    # the API checks it is an identifier (api/messages.py); histories keep what they hold
    pickup_location_id: str | None = None


class OrderInput(_Strict):
    """The order body a web shop posts; also the OrderWorkflow input, where order_id is
    the OMS's id of the order (`{channel_order_id}@{channel}`)."""

    order_id: OrderId
    sales_channel: Identifier
    customer: Customer
    ship_to: Address
    lines: list[OrderLineInput] = Field(min_length=1, max_length=500)
    payment: Payment
    delivery: Delivery = Field(default_factory=Delivery)

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: list[OrderLineInput]) -> list[OrderLineInput]:
        seen: set[str] = set()
        for line in lines:
            if line.line_id in seen:
                raise ValueError(f"duplicate line_id {line.line_id!r}")
            seen.add(line.line_id)
        return lines

    @model_validator(mode="after")
    def _total_fits(self) -> OrderInput:
        if self.total >= MAX_ORDER_TOTAL:
            raise ValueError(f"order total must be below {MAX_ORDER_TOTAL}")
        return self

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))


# --------------------------------------------------------------------------- configuration
# These types are what workers read back: from the store, and inside ValidateOrderResult in
# workflow histories. They ignore unknown fields, so configuration written by a newer
# version does not break an older worker or a recorded history. What the API accepts is
# stricter (unknown fields refused, numbers finite and bounded, URLs checked): the
# subclasses in api/schemas.py.


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LocationConfig(_Tolerant):
    location_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    type: Literal["warehouse", "store"] = "warehouse"
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}") from err
        return value

    cutoff_time: str = Field(default="15:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    lead_time_days: int = Field(default=0, ge=0, le=60)
    daily_capacity: int = Field(default=1000, ge=0)
    priority: int = 0
    enabled: bool = True
    webhook_url: str | None = Field(default=None, max_length=500)
    cost_per_shipment: float = Field(default=0.0, ge=0)
    channels: list[str] = Field(default_factory=list)  # empty: serves every channel
    # empty: "ship" for warehouses, "ship" and "pickup" for stores
    delivery_types: list[Literal["ship", "pickup"]] = Field(default_factory=list)
    # postal address, printed on its delivery notes, return notes and return labels
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=20)
    city: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=2)  # ISO 3166-1 alpha-2
    # None: the channel's document_kinds; a list (even an empty one) replaces them here
    document_kinds: list[DocumentKind] | None = None


RuleField = Literal[
    "order_total",
    "payment_method",
    "customer_id",
    "sku",
    "location_id",
    "ship_to_country",
    "line_count",
    "currency",
]
RuleOperator = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in"]
RuleValue = Decimal | str | list[str]


class RuleCondition(BaseModel):
    """One comparison of an order fact with a value. `sku` and `location_id` are sets
    (every line's SKU, every location routing chose): eq/in hold when any member matches,
    ne/not_in when none does. Built directly it refuses unknown fields; read back inside
    an ApprovalRule (configuration, histories) they are dropped first."""

    model_config = ConfigDict(extra="forbid")
    field: RuleField
    op: RuleOperator
    value: RuleValue

    @model_validator(mode="after")
    def _value_fits_operator(self) -> RuleCondition:
        listed = self.op in ("in", "not_in")
        if listed != isinstance(self.value, list):
            raise ValueError(f"{self.op} needs {'a list' if listed else 'a single'} value")
        if self.op in ("gt", "ge", "lt", "le") and self.field not in ("order_total", "line_count"):
            raise ValueError(f"{self.op} compares numbers: order_total or line_count only")
        if self.field in ("order_total", "line_count"):
            for item in self.value if isinstance(self.value, list) else [self.value]:
                try:
                    number = Decimal(str(item))
                except ArithmeticError as err:
                    raise ValueError(f"{self.field} compares with numbers, not {item!r}") from err
                if not number.is_finite():
                    raise ValueError(f"{self.field} compares with finite numbers")
        return self


class ApprovalRule(_Tolerant):
    """Structured conditions (never evaluated code): all of them, or any of them."""

    match: Literal["all", "any"] = "all"
    conditions: list[RuleCondition] = Field(min_length=1)

    @field_validator("conditions", mode="before")
    @classmethod
    def _drop_unknown_condition_fields(cls, value: Any) -> Any:
        """Tolerant like the rest of the configuration read back; the API's strict
        subclass (extra="forbid") keeps every field so a typo is refused."""
        if cls.model_config.get("extra") == "forbid" or not isinstance(value, list):
            return value
        known = RuleCondition.model_fields.keys()
        return [
            {k: v for k, v in item.items() if k in known} if isinstance(item, dict) else item
            for item in value
        ]


class ApprovalReasonConfig(_Tolerant):
    reason: Identifier
    rank: int = Field(default=1, ge=1)
    approvers: list[str] = Field(min_length=1)
    description: str = ""
    rule: ApprovalRule | None = None  # None: applies to every order of the channel
    webhook_url: str | None = None  # a third-party system gets the request (signed JSON)
    timeout_seconds: float | None = Field(default=None, gt=0)
    timeout_action: Literal["decline", "escalate"] = "decline"
    escalate_to: list[str] = Field(default_factory=list)
    reroute_after_approval: bool = False

    @model_validator(mode="after")
    def _escalation_has_approvers(self) -> ApprovalReasonConfig:
        if self.timeout_action == "escalate" and not self.escalate_to:
            raise ValueError("timeout_action escalate needs escalate_to approvers")
        return self


def _default_document_kinds() -> list[DocumentKind]:
    return ["delivery_note"]


class RoutingWeights(_Tolerant):
    """How a channel scores candidate locations (each part normalized to 0..1)."""

    distance: float = Field(default=1.0, ge=0)
    stock: float = Field(default=0.0, ge=0)
    backlog: float = Field(default=0.0, ge=0)
    cost: float = Field(default=0.0, ge=0)
    priority: float = Field(default=0.0, ge=0)


SplitPolicy = Literal["ship_complete", "split_lines", "split_quantities"]


Disposition = Literal["RESTOCK", "DISCARD", "RETURN_TO_VENDOR"]
# what a receiving location may say of a returned unit
ReturnCondition = Literal["new", "opened", "damaged", "defective"]
RETURN_CONDITIONS: tuple[str, ...] = ("new", "opened", "damaged", "defective")


class DispositionRule(_Tolerant):
    """What becomes of returned units with this reason code and/or condition."""

    reason_code: str | None = None
    condition: str | None = None
    disposition: Disposition


def _default_disposition_rules() -> list[DispositionRule]:
    return [
        DispositionRule(condition="damaged", disposition="DISCARD"),
        DispositionRule(condition="defective", disposition="RETURN_TO_VENDOR"),
        DispositionRule(reason_code="damaged", disposition="DISCARD"),
        DispositionRule(reason_code="defective", disposition="RETURN_TO_VENDOR"),
    ]


def disposition_for(
    rules: list[DispositionRule], default: str, reason_code: str | None, condition: str
) -> str:
    """The most specific matching rule decides: reason and condition, then condition (what
    the receiving location found), then reason (what the customer said), then the default."""
    ranked: list[tuple[int, str]] = []
    for rule in rules:
        if rule.reason_code is not None and rule.reason_code != reason_code:
            continue
        if rule.condition is not None and rule.condition != condition:
            continue
        rank = (2 if rule.condition is not None else 0) + (1 if rule.reason_code else 0)
        if rank:
            ranked.append((rank, rule.disposition))
    if not ranked:
        return default
    best = max(rank for rank, _ in ranked)
    return next(d for rank, d in ranked if rank == best)


class SalesChannelConfig(_Tolerant):
    channel_id: Identifier
    name: str = ""
    approval_reasons: list[ApprovalReasonConfig] = Field(default_factory=list)
    excluded_locations: list[str] = Field(default_factory=list)
    # units held back from this channel's ATP, by location id or location type
    # ("warehouse", "store"); a location's own entry wins over its type's
    safety_buffers: dict[str, int] = Field(default_factory=dict)
    routing_weights: RoutingWeights = Field(default_factory=RoutingWeights)
    # ship_complete: one location for every line or none; split_lines: fewest locations,
    # each line whole; split_quantities: a line may be split when no location has it all
    split_policy: SplitPolicy = "split_lines"
    max_distance_km: float | None = Field(default=None, gt=0)
    document_kinds: list[DocumentKind] = Field(default_factory=_default_document_kinds)
    fraud_total_threshold: Decimal | None = None
    return_window_days: int = Field(default=30, ge=0, le=365)
    # a return not received within this many days of its request expires (fractions of a
    # day allowed)
    return_expiry_days: float = Field(default=30, gt=0, le=365)
    # kept back from each return's refund (the customer pays the way back); never below 0
    return_shipping_fee: Decimal = Decimal("0")
    return_disposition: Disposition = "RESTOCK"
    # a shipment whose delivery failed this many times (tracking) goes back to the
    # location that shipped it (a RETURN_TO_SENDER return)
    delivery_attempts_before_return: int = Field(default=3, ge=1)
    return_disposition_rules: list[DispositionRule] = Field(
        default_factory=_default_disposition_rules
    )
    callback_url: str | None = None
    auto_cancel_not_announced: bool = False
    # backordered units with no location in stock are re-routed on a durable timer,
    # up to this many times; then the remaining units are cancelled
    backorder_retry_seconds: float = Field(default=3600, gt=0)
    backorder_max_attempts: int = Field(default=24, ge=0)
    # a stage whose activity fails this many times in a row for technical reasons (a 5xx,
    # a timeout, the store unreachable) shows its last error in the order while it keeps
    # retrying in rounds of this many attempts
    stage_attempts_before_alert: int = Field(default=5, ge=1)
    # click and collect: a pickup store short of stock gets the units transferred from a
    # warehouse (a TRANSFER work order there, the store hands over once they arrive);
    # False: such an order waits for stock at the store
    pickup_transfers: bool = True

    @field_validator("approval_reasons")
    @classmethod
    def _unique_reasons(cls, reasons: list[ApprovalReasonConfig]) -> list[ApprovalReasonConfig]:
        names = [r.reason for r in reasons]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"approval reasons must be unique: {', '.join(duplicates)}")
        return reasons


# --------------------------------------------------------------------------- order view


class Event(BaseModel):
    seq: int
    at: datetime
    type: str
    detail: str = ""


class LineView(BaseModel):
    line_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    status: LineStatus = LineStatus.CREATED
    location_id: str | None = None
    planned_ship_date: date | None = None
    shipped_quantity: int = 0
    delivered_quantity: int = 0
    cancelled_quantity: int = 0
    # units that came back in a received return
    returned_quantity: int = 0


class Candidate(BaseModel):
    location_id: str
    atp: int
    distance_km: float | None = None
    score: float | None = None
    parts: dict[str, float] = Field(default_factory=dict)
    rejected_reason: str | None = None


class RoutingDecision(BaseModel):
    line_id: str
    attempt: int
    quantity: int
    location_id: str | None = None
    reservation_id: str | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    # locations left out of `candidates` because they hold none of the SKU
    omitted_without_stock: int = 0
    reason: str = ""
    # click and collect: the pickup store the units are transferred to from location_id
    transfer_to: str | None = None


class ApprovalView(BaseModel):
    reason: str
    rank: int
    approvers: list[str]
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None
    requested_at: datetime | None = None
    escalated: bool = False


class ReleaseView(BaseModel):
    release_key: str
    line_id: str
    location_id: str
    quantity: int
    status: ReleaseStatus
    status_quantity: int
    created_at: datetime


class ShipmentView(BaseModel):
    shipment_key: str
    release_key: str
    line_id: str
    location_id: str
    quantity: int = 0
    status: ShipmentStatus = ShipmentStatus.OPEN
    carrier: str | None = None
    tracking_number: str | None = None


class DocumentView(BaseModel):
    document_id: str
    location_id: str
    kind: str
    url: str


class ReturnLine(BaseModel):
    line_id: str
    quantity: int


class ReceivedLine(BaseModel):
    """What a receiving location found of a return's line, and what became of it."""

    line_id: str
    quantity: int
    condition: str = "new"
    disposition: str | None = None  # RESTOCK, DISCARD or RETURN_TO_VENDOR


class ReturnView(BaseModel):
    return_id: str
    # CANCEL: units cancelled before shipping; RETURN: units the customer sends back
    type: Literal["CANCEL", "RETURN", "RETURN_TO_SENDER"]
    lines: list[ReturnLine]
    # CANCEL: RECORDED; RETURN: OPEN -> RECEIVED or EXPIRED
    status: str
    reason: str = ""
    reason_code: str | None = None
    location_id: str | None = None  # the location that receives the parcel
    created_at: datetime | None = None
    expires_at: datetime | None = None
    received: list[ReceivedLine] = Field(default_factory=list)
    refund_amount: Decimal | None = None


class WorkOrderView(BaseModel):
    work_order_id: str
    location_id: str
    line_ids: list[str]
    # PACKAGING (pick, pack, ship or hand over) or TRANSFER (to destination_id)
    kind: str = "PACKAGING"
    destination_id: str | None = None


class OrderView(BaseModel):
    """What GET /v1/orders/{id} and the `state` query return."""

    order_id: str
    sales_channel: str
    customer_id: str
    status: OrderStatus
    hold_reasons: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    total: Decimal
    currency: str
    lines: list[LineView]
    routing: list[RoutingDecision] = Field(default_factory=list)
    approvals: list[ApprovalView] = Field(default_factory=list)
    releases: list[ReleaseView] = Field(default_factory=list)
    shipments: list[ShipmentView] = Field(default_factory=list)
    documents: list[DocumentView] = Field(default_factory=list)
    work_orders: list[WorkOrderView] = Field(default_factory=list)
    returns: list[ReturnView] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)

    def line(self, line_id: str) -> LineView:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(line_id)


# --------------------------------------------------------------------------- signals / updates


class ApprovalDecisionInput(_Strict):
    reason: str = Field(min_length=1, max_length=64)
    decision: Literal["approve", "decline"]
    approver: str = Field(default="", max_length=100)
    comment: str | None = Field(default=None, max_length=1000)
    # set by the API, never by the caller: who decided when it is not the approver
    # themselves ("<admin key name> for <approver>"); the approval's decided_by and its
    # event name them. None (every decision from before): the approver.
    decided_by: SkipJsonSchema[str | None] = Field(default=None, max_length=100)

    def recorded_as(self) -> str:
        """The approval's decided_by once this decision counts."""
        return self.decided_by or self.approver

    @model_serializer(mode="wrap")
    def _without_unset_decided_by(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a decision by the approver serializes as before this field existed, so workers
        # of the previous release still accept it during a rolling upgrade
        data = handler(self)
        if isinstance(data, dict) and data.get("decided_by") is None:
            data.pop("decided_by", None)
        return data


MAX_REASON_LENGTH = 2000


def _cut_reason(value: Any) -> Any:
    """A cancel reason is free text for the audit trail: a longer one is cut, never
    refused. Orders write reasons of their own (an approver's comment, every routing
    reason of a not-announced order), and a refusal inside a workflow would fail its
    task for ever."""
    if isinstance(value, str) and len(value) > MAX_REASON_LENGTH:
        return value[: MAX_REASON_LENGTH - 1] + "\u2026"
    return value


class CancelInput(_Strict):
    # left out: the whole order; else line ids, a repeated id counts once. The API refuses
    # [] and more than MAX_MESSAGE_LINES (api/messages.py), the workflow refuses them too;
    # this type, which histories hold, stays as loose as it always was
    line_ids: list[str] | None = None
    reason: Annotated[str, BeforeValidator(_cut_reason)] = Field(
        default="customer request", max_length=MAX_REASON_LENGTH
    )

    @field_validator("line_ids")
    @classmethod
    def _each_once(cls, line_ids: list[str] | None) -> list[str] | None:
        return None if line_ids is None else list(dict.fromkeys(line_ids))


class ResumeInput(_Strict):
    payment: Payment | None = None
    comment: str | None = Field(default=None, max_length=1000)


class PickedLine(_Strict):
    line_id: str = Field(min_length=1, max_length=64)
    picked_quantity: int = Field(ge=0, le=1_000_000)


class PickReport(_Strict):
    """A location's pick report as releases (and their histories) hold it; what the API
    accepts is stricter (api/messages.py: at most MAX_MESSAGE_LINES, each line once)."""

    lines: list[PickedLine] = Field(min_length=1)


class ShipReport(_Strict):
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: str = Field(min_length=1, max_length=128)


class DeliverReport(_Strict):
    delivered_at: datetime | None = None


class ReturnedToSenderReport(_Strict):
    """The carrier gave up delivering a shipment and brings it back (tracking)."""

    reason: str = Field(default="returned to sender", max_length=500)


# --------------------------------------------------------------------------- projection


class OrderProjection(BaseModel):
    """Status and line projection written to the store at every change, with new events."""

    order_id: str
    sales_channel: str
    customer_id: str
    status: OrderStatus
    total: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    lines: list[LineView]
    new_events: list[Event] = Field(default_factory=list)
    approvals: list[ApprovalView] | None = None
    # the whole order view, which GET /v1/orders/{id} answers from (left out by
    # projections scheduled before it existed; a local activity input, not in history)
    view: OrderView | None = None


# --------------------------------------------------------------------------- activity I/O


class ValidateOrderInput(BaseModel):
    order: OrderInput


class ValidateOrderResult(BaseModel):
    hold_reasons: list[str] = Field(default_factory=list)
    channel: SalesChannelConfig | None = None


class RouteLine(BaseModel):
    line_id: str
    sku: str
    quantity: int
    attempt: int
    exclude_locations: list[str] = Field(default_factory=list)


class RouteOrderInput(BaseModel):
    order_id: str
    sales_channel: str
    ship_to: Address
    lines: list[RouteLine]
    delivery: Delivery | None = None
    per_line: bool = False  # route each line on its own (backorders)


RoutingOutcome = Literal["assigned", "check_announced", "not_announced"]


class RouteOrderResult(BaseModel):
    decisions: list[RoutingDecision]
    outcome: RoutingOutcome = "assigned"
    reasons: list[str] = Field(default_factory=list)


class ManualAssignment(_Strict):
    line_id: str = Field(min_length=1, max_length=64)
    location_id: str = Field(min_length=1, max_length=64)
    quantity: int | None = Field(default=None, gt=0)  # default: every open unit


class AssignmentsInput(_Strict):
    assignments: list[ManualAssignment] = Field(min_length=1, max_length=MAX_MESSAGE_LINES)
    comment: str | None = Field(default=None, max_length=1000)

    @field_validator("assignments")
    @classmethod
    def _unique_pairs(cls, assignments: list[ManualAssignment]) -> list[ManualAssignment]:
        seen: set[tuple[str, str]] = set()
        for a in assignments:
            if (a.line_id, a.location_id) in seen:
                raise ValueError(f"line {a.line_id!r} at {a.location_id!r} is assigned twice")
            seen.add((a.line_id, a.location_id))
        return assignments


class AssignLine(BaseModel):
    line_id: str
    sku: str
    quantity: int
    attempt: int
    location_id: str


class AssignLocationsInput(BaseModel):
    order_id: str
    lines: list[AssignLine]
    # click and collect: a line assigned elsewhere is transferred to this store
    pickup_location_id: str | None = None


class AssignLocationsResult(BaseModel):
    decisions: list[RoutingDecision]
    # line_id -> why it could not be reserved (nothing is reserved then)
    refused: dict[str, str] = Field(default_factory=dict)


class ResponseLine(BaseModel):
    line_id: str
    location_id: str


class OrderResponseInput(BaseModel):
    order_id: str
    sales_channel: str
    lines: list[ResponseLine]
    as_of: datetime


class OrderResponseResult(BaseModel):
    planned_ship_dates: dict[str, date]
    callback_sent: bool = False


class ReleasePlan(BaseModel):
    """One location's share of an order in one release: documents, work order, child."""

    seq: int
    location_id: str
    line_ids: list[str]
    release_key: str
    shipment_key: str
    work_order_id: str
    # units of each line in this release (a split or re-released line ships part of the
    # ordered quantity); empty in plans made before it existed: the whole line
    quantities: dict[str, int] = Field(default_factory=dict)
    # a TRANSFER release: location_id ships to this pickup store, which hands over
    transfer_to: str | None = None


class DocumentsInput(BaseModel):
    order: OrderInput
    kinds: list[str]
    releases: list[ReleasePlan]


class DocumentsResult(BaseModel):
    documents: list[DocumentView]


class SubmitWorkOrdersInput(BaseModel):
    order_id: str
    releases: list[ReleasePlan]
    # False: only record the work orders; their webhooks are sent one by one outside the
    # order's lock (send_work_order), so a failing partner never holds back a cancel
    send_webhooks: bool = True
    # set: the releases are written too (each release's lines and its empty shipment, as
    # of this time), before the order shows them (patch oms-13-releases-at-submission;
    # before, each release's workflow wrote its own first)
    release_at: datetime | None = None


class SendWorkOrderInput(BaseModel):
    """One location's work order to its webhook (if it has one)."""

    order_id: str
    release: ReleasePlan


class SendWorkOrderResult(BaseModel):
    sent: bool = False  # False: the location has no webhook (it reads its work-order list)
    # the work order was cancelled before it could be sent: nothing was sent
    cancelled: bool = False


class WorkOrderCancelledInput(BaseModel):
    """Tell a location that was sent a work order that (some of) its lines are cancelled."""

    order_id: str
    location_id: str
    work_order_id: str
    shipment_key: str
    line_ids: list[str]
    reason: str = ""
    # a TRANSFER work order: the pickup store waiting for it is told as well
    transfer_to: str | None = None


class SubmitWorkOrdersResult(BaseModel):
    work_orders: list[WorkOrderView]
    sent_to_webhook: list[str] = Field(default_factory=list)
    # with send_webhooks False: the work orders whose location has a webhook to send to
    to_send: list[str] = Field(default_factory=list)


class ReleaseReservationsInput(BaseModel):
    order_id: str
    reservation_ids: list[str]


class ReleaseReservationsResult(BaseModel):
    released: list[str]


class CancelOrderInput(BaseModel):
    """Release reservations of cancelled units and record the CANCEL return."""

    order_id: str
    return_id: str
    lines: list[ReturnLine]
    reservation_ids: list[str]
    reason: str


class CancelOrderResult(BaseModel):
    released: list[str]


class FulfillmentLine(BaseModel):
    line_id: str
    sku: str
    quantity: int
    reservation_id: str


class FulfillmentInput(BaseModel):
    order_id: str
    location_id: str
    release_key: str
    shipment_key: str
    work_order_id: str
    lines: list[FulfillmentLine]
    # a TRANSFER release: shipped to this pickup store, received and handed over there
    # (shipment_key + HANDOVER_SUFFIX is the store's part, handover_key)
    transfer_to: str | None = None
    # the order writes the release (with its work orders) and records it itself: this
    # workflow begins with the pick (patch oms-13-releases-at-submission; releases from
    # before write it and signal the order themselves)
    order_took_release: bool = False

    @property
    def handover_key(self) -> str:
        return handover_key(self.shipment_key)


# the pickup store's part of a TRANSFER release: shipment S{n}-H, work order WO{n}-H
HANDOVER_SUFFIX = "-H"


def handover_key(shipment_key: str) -> str:
    return shipment_key + HANDOVER_SUFFIX


class FulfillmentResult(BaseModel):
    release_key: str
    delivered: dict[str, int] = Field(default_factory=dict)
    cancelled: bool = False


class FulfillmentProgress(BaseModel):
    """Signal from a fulfillment child to its order: what happened at the location."""

    release_key: str
    shipment_key: str
    location_id: str
    kind: ProgressKind
    # line_id -> quantity that reached this step (picked / shipped / delivered)
    quantities: dict[str, int] = Field(default_factory=dict)
    # line_id -> units not found at the location (only on "picked")
    backordered: dict[str, int] = Field(default_factory=dict)
    carrier: str | None = None
    tracking_number: str | None = None


class TellsOrder(BaseModel):
    """A release's step whose activity tells the order of it (the `fulfillment_progress`
    signal sent once the store is written; patch oms-13-progress-from-activities): no
    signal from the release's workflow, whose delivery cost it a workflow task."""

    progress: FulfillmentProgress | None = None
    order_workflow_id: str | None = None


class ReleaseInput(TellsOrder):
    fulfillment: FulfillmentInput
    at: datetime


class RecordPickInput(TellsOrder):
    fulfillment: FulfillmentInput
    picked: dict[str, int]


class RecordShipInput(TellsOrder):
    fulfillment: FulfillmentInput
    shipped: dict[str, int]
    carrier: str
    tracking_number: str


class ReceiveTransferReport(_Strict):
    """The pickup store has the transferred units (its scan of the parcel)."""

    received_at: datetime | None = None


class RecordTransferReceiptInput(TellsOrder):
    fulfillment: FulfillmentInput
    received: dict[str, int]


class RecordDeliveryInput(TellsOrder):
    fulfillment: FulfillmentInput
    delivered: dict[str, int]


class RecordReturnedToSenderInput(TellsOrder):
    fulfillment: FulfillmentInput
    returned: dict[str, int]


class CancelReleaseInput(TellsOrder):
    fulfillment: FulfillmentInput
    line_ids: list[str]
    reason: str


class CancelLinesInput(BaseModel):
    """Parent to fulfillment child: stop work on these lines if not shipped yet."""

    line_ids: list[str]
    reason: str = ""


NoticeKind = Literal["request", "withdraw"]


class ApprovalNotice(BaseModel):
    """Tell third-party approval systems about requests and withdrawals."""

    order_id: str
    kind: NoticeKind
    approvals: list[ApprovalView]
    webhooks: dict[str, str]  # reason -> URL


class ApprovalUpdateResult(BaseModel):
    approvals: list[ApprovalView]
    status: OrderStatus


class StoreReportResult(BaseModel):
    shipment_key: str
    status: ShipmentStatus


class OrderCommandResult(BaseModel):
    status: OrderStatus


# --------------------------------------------------------------------------- returns


class ReturnRequestLine(_Strict):
    line_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1_000_000)


class ReturnRequestInput(_Strict):
    """A customer's return of delivered units (the order's `request_return` update)."""

    lines: list[ReturnRequestLine] = Field(min_length=1, max_length=MAX_MESSAGE_LINES)
    reason_code: str = Field(min_length=1, max_length=64)
    comment: str | None = Field(default=None, max_length=1000)
    # the location that receives the parcel; left out: the one that shipped the first line
    location_id: str | None = Field(default=None, min_length=1, max_length=64)


class ReturnItem(BaseModel):
    line_id: str
    sku: str
    quantity: int
    unit_price: Decimal


class ReturnWorkflowInput(_Tolerant):
    return_id: str
    order_id: str
    sales_channel: str
    currency: str
    type: str = "RETURN"
    location_id: str
    reason_code: str
    items: list[ReturnItem]
    expires_at: datetime
    shipping_fee: Decimal = Decimal("0")
    disposition: str = "RESTOCK"
    disposition_rules: list[DispositionRule] = Field(default_factory=list)
    # the order as placed (addresses and lines for the return note and label)
    order: OrderInput | None = None


class ReceivedLineInput(_Strict):
    line_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=0, le=1_000_000)
    condition: ReturnCondition = "new"


class ReceiveReturnInput(_Strict):
    """What the receiving location found in the parcel (the return's `receive` update)."""

    lines: list[ReceivedLineInput] = Field(min_length=1, max_length=MAX_MESSAGE_LINES)


class ReturnOutcome(BaseModel):
    """A return settled: what the order learns from its ReturnWorkflow."""

    return_id: str
    status: str  # RECEIVED or EXPIRED
    received: list[ReceivedLine] = Field(default_factory=list)
    refund_amount: Decimal | None = None


class OpenReturnInput(BaseModel):
    input: ReturnWorkflowInput
    reason: str = ""


class OpenReturnResult(BaseModel):
    documents: list[DocumentView] = Field(default_factory=list)


class DisposeReturnInput(BaseModel):
    input: ReturnWorkflowInput
    received: list[ReceivedLine]


class RefundNoticeInput(BaseModel):
    input: ReturnWorkflowInput
    received: list[ReceivedLine]
    refund_amount: Decimal


class SettleReturnInput(BaseModel):
    outcome: ReturnOutcome


# --------------------------------------------------------------------------- tracking

TrackingStatus = Literal[
    "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "DELIVERY_FAILED", "RETURNED_TO_SENDER"
]
TRACKING_STATUSES: tuple[str, ...] = (
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "DELIVERY_FAILED",
    "RETURNED_TO_SENDER",
)


class TrackingUpdate(BaseModel):
    """A new tracking event of one of the order's shipments (the `tracking_event` signal)."""

    shipment_key: str
    event_id: str
    status: str
    at: datetime
    place: str | None = None
    detail: str | None = None
    location_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None


class TrackingNotice(BaseModel):
    order_id: str
    sales_channel: str
    update: TrackingUpdate
