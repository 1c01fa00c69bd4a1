"""Validation stage: business rules per sales channel (schema checks live in the API)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError
from temporalio import activity

from store import Store
from workflows.model import OrderInput, SalesChannelConfig, ValidateOrderInput, ValidateOrderResult


def hold_reasons(order: OrderInput, channel: SalesChannelConfig | None) -> list[str]:
    """Every failed rule, worded for the operator who has to fix it."""
    reasons: list[str] = []
    if channel is None:
        reasons.append(f"unknown sales channel {order.sales_channel}")
    if not order.lines:
        reasons.append("order has no lines")
    if not order.payment.authorized:
        reasons.append("payment is not authorized")
    total = order.total
    if order.payment.amount != total:
        reasons.append(f"payment amount {order.payment.amount} does not equal order total {total}")
    if channel is not None and channel.fraud_total_threshold is not None:
        if total > Decimal(channel.fraud_total_threshold):
            reasons.append(f"fraud check: total {total} above {channel.fraud_total_threshold}")
    if order.delivery.type == "pickup" and not order.delivery.pickup_location_id:
        reasons.append("pickup order without pickup_location_id")
    return reasons


class ValidationActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="validate_order")
    async def validate_order(self, input: ValidateOrderInput) -> ValidateOrderResult:
        raw = await self.store.config.channel(input.order.sales_channel)
        try:
            channel = SalesChannelConfig.model_validate(raw) if raw else None
            if channel is not None:
                # exactly what the workflow will decode: a value JSON cannot carry (an
                # infinite number, say) is caught here, not in the order's workflow task
                channel = SalesChannelConfig.model_validate_json(channel.model_dump_json())
        except ValidationError as err:
            # configuration stored before it was checked (or edited by hand): the order
            # waits ON_HOLD until the channel is fixed, instead of failing its workflow
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in err.errors(include_url=False, include_input=False)[:5]
            )
            return ValidateOrderResult(
                hold_reasons=[
                    f"sales channel {input.order.sales_channel} has invalid configuration "
                    f"({problems}); fix it with PUT /v1/sales-channels, then resume"
                ]
            )
        return ValidateOrderResult(hold_reasons=hold_reasons(input.order, channel), channel=channel)
