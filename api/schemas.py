"""What the configuration API accepts: strict subclasses of the configuration types.

The types in workflows/model.py are what workers read back (from the store, and inside
workflow histories), so they tolerate unknown fields and keep their old limits. These
subclasses are for writes: unknown fields are refused, every number is finite and
bounded by what a workflow can live with (a timer of at most 30 days, at most 1000
backorder attempts, buffers of at most a million units), every list and string has a
length limit, and URLs are http(s) with a host. An instance is also an instance of the
type it refines, so the rest of the code takes it as it is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from workflows.model import (
    ApprovalReasonConfig,
    ApprovalRule,
    DispositionRule,
    DocumentKind,
    Identifier,
    LocationConfig,
    Money,
    ReturnCondition,
    RoutingWeights,
    RuleCondition,
    SalesChannelConfig,
    _default_disposition_rules,
)

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

MAX_WAIT_SECONDS = 30 * 24 * 3600  # the longest timer a configuration may ask for
MAX_BACKORDER_ATTEMPTS = 1000
MAX_BUFFER_UNITS = 1_000_000
MAX_URL_LENGTH = 500  # the locations table keeps 500 characters
MAX_WEIGHT = 1000.0
MAX_DISTANCE_KM = 40_000.0  # once around the earth
MAX_COST = 1_000_000.0
MAX_ALERT_ATTEMPTS = 100  # the workflow's own bound (workflows/order_base.py)
MAX_DAILY_CAPACITY = 10_000_000
MAX_PRIORITY = 1_000_000
MAX_REFERENCES = 1000  # excluded locations, buffers, a location's channels
MAX_APPROVAL_REASONS = 20
MAX_APPROVERS = 50
MAX_CONDITIONS = 20
MAX_CONDITION_VALUES = 500
# a channel's configuration rides in every order's history (ValidateOrderResult), whose
# payloads Temporal refuses above 2 MB: keep it well below
MAX_CHANNEL_JSON_BYTES = 256 * 1024


def http_url(value: str) -> str:
    """An absolute http or https URL with a host, as typed (not normalized)."""
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("a URL has no spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (parsing the port checks it)
    except ValueError as err:
        raise ValueError(f"not a URL: {err}") from err
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL must name a host")
    return value


WebhookUrl = Annotated[
    str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(http_url)
]
ApproverName = Annotated[str, Field(min_length=1, max_length=100)]  # an API key's identity
ConditionText = Annotated[str, Field(max_length=200)]
Seconds = Annotated[float, Field(gt=0, le=MAX_WAIT_SECONDS)]
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT)]
BufferUnits = Annotated[int, Field(ge=0, le=MAX_BUFFER_UNITS)]


def _unique(items: list[str], what: str) -> list[str]:
    repeated = sorted({i for i in items if items.count(i) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique: {', '.join(repeated)}")
    return items


class RuleConditionIn(RuleCondition):
    model_config = STRICT
    value: (
        Decimal
        | ConditionText
        | Annotated[list[ConditionText], Field(max_length=MAX_CONDITION_VALUES)]
    )


class ApprovalRuleIn(ApprovalRule):
    model_config = STRICT
    conditions: list[RuleConditionIn] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_CONDITIONS
    )


class ApprovalReasonConfigIn(ApprovalReasonConfig):
    model_config = STRICT
    rank: int = Field(default=1, ge=1, le=100)
    approvers: list[ApproverName] = Field(min_length=1, max_length=MAX_APPROVERS)
    description: str = Field(default="", max_length=1000)
    rule: ApprovalRuleIn | None = None
    webhook_url: WebhookUrl | None = None
    timeout_seconds: Seconds | None = None
    escalate_to: list[ApproverName] = Field(default_factory=list, max_length=MAX_APPROVERS)


class RoutingWeightsIn(RoutingWeights):
    model_config = STRICT
    distance: Weight = 1.0
    stock: Weight = 0.0
    backlog: Weight = 0.0
    cost: Weight = 0.0
    priority: Weight = 0.0


def _default_document_kinds() -> list[DocumentKind]:
    return ["delivery_note"]


class DispositionRuleIn(DispositionRule):
    model_config = STRICT
    reason_code: Identifier | None = None
    condition: ReturnCondition | None = None

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if self.reason_code is None and self.condition is None:
            raise ValueError("a rule names a reason_code, a condition or both")
        return self


class SalesChannelConfigIn(SalesChannelConfig):
    model_config = STRICT
    name: str = Field(default="", max_length=200)
    approval_reasons: list[ApprovalReasonConfigIn] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=MAX_APPROVAL_REASONS
    )
    excluded_locations: list[Identifier] = Field(default_factory=list, max_length=MAX_REFERENCES)
    safety_buffers: dict[Identifier, BufferUnits] = Field(
        default_factory=dict, max_length=MAX_REFERENCES
    )
    routing_weights: RoutingWeightsIn = Field(default_factory=RoutingWeightsIn)
    max_distance_km: float | None = Field(default=None, gt=0, le=MAX_DISTANCE_KM)
    document_kinds: list[DocumentKind] = Field(
        default_factory=_default_document_kinds, max_length=3
    )
    fraud_total_threshold: Money | None = None
    callback_url: WebhookUrl | None = None
    # at least a tenth of a second: a zero timer would re-route in a tight loop
    backorder_retry_seconds: float = Field(default=3600, ge=0.1, le=MAX_WAIT_SECONDS)
    backorder_max_attempts: int = Field(default=24, ge=0, le=MAX_BACKORDER_ATTEMPTS)
    stage_attempts_before_alert: int = Field(default=5, ge=1, le=MAX_ALERT_ATTEMPTS)
    return_shipping_fee: Money = Decimal("0")
    delivery_attempts_before_return: int = Field(default=3, ge=1, le=20)
    return_disposition_rules: list[DispositionRuleIn] = Field(  # type: ignore[assignment]
        default_factory=lambda: [
            DispositionRuleIn.model_validate(r.model_dump()) for r in _default_disposition_rules()
        ],
        max_length=MAX_REFERENCES,
    )

    @field_validator("document_kinds")
    @classmethod
    def _unique_kinds(cls, kinds: list[DocumentKind]) -> list[DocumentKind]:
        _unique(list(kinds), "document kinds")
        return kinds

    @model_validator(mode="after")
    def _fits_a_history(self) -> Self:
        size = len(self.model_dump_json())
        if size > MAX_CHANNEL_JSON_BYTES:
            raise ValueError(
                f"the channel configuration is {size} bytes of JSON; "
                f"at most {MAX_CHANNEL_JSON_BYTES} are accepted"
            )
        return self


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("printed on documents: no line breaks or control characters")
    return value


AddressLine = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
PostalCode = Annotated[str, Field(min_length=1, max_length=20), AfterValidator(_printable)]
CityName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]


class LocationConfigIn(LocationConfig):
    model_config = STRICT
    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    daily_capacity: int = Field(default=1000, ge=0, le=MAX_DAILY_CAPACITY)
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    webhook_url: WebhookUrl | None = None
    cost_per_shipment: float = Field(default=0.0, ge=0, le=MAX_COST)
    channels: list[Identifier] = Field(default_factory=list, max_length=MAX_REFERENCES)
    delivery_types: list[Literal["ship", "pickup"]] = Field(default_factory=list, max_length=2)
    address_line1: AddressLine | None = None
    address_line2: AddressLine | None = None
    postal_code: PostalCode | None = None
    city: CityName | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    document_kinds: list[DocumentKind] | None = Field(default=None, max_length=3)

    @field_validator("delivery_types")
    @classmethod
    def _unique_delivery_types(
        cls, types: list[Literal["ship", "pickup"]]
    ) -> list[Literal["ship", "pickup"]]:
        _unique(list(types), "delivery types")
        return types

    @field_validator("document_kinds")
    @classmethod
    def _unique_kinds(cls, kinds: list[DocumentKind] | None) -> list[DocumentKind] | None:
        if kinds is not None:
            _unique(list(kinds), "document kinds")
        return kinds
