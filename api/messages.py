"""What the API accepts for order messages: stricter than the types running histories
hold (workflows/model.py). A history keeps the payload it was sent for as long as the
order lives, so tightening a durable type could make an old order undecodable on replay;
new rules go here, in the API, and the workflow checks what matters again."""

from __future__ import annotations

from pydantic import Field, field_validator

from workflows.model import (
    MAX_MESSAGE_LINES,
    AssignmentsInput,
    CancelInput,
    Delivery,
    Identifier,
    ManualAssignment,
    OrderInput,
    PickedLine,
    PickReport,
    PositiveQty,
)


class CancelRequest(CancelInput):
    # left out: the whole order; else 1..MAX_MESSAGE_LINES line ids ([] is not "all")
    line_ids: list[Identifier] | None = Field(
        default=None, min_length=1, max_length=MAX_MESSAGE_LINES
    )


class PickedLineRequest(PickedLine):
    line_id: Identifier
    picked_quantity: int = Field(strict=True, ge=0, le=1_000_000)


class PickRequest(PickReport):
    lines: list[PickedLineRequest] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_MESSAGE_LINES
    )

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: list[PickedLineRequest]) -> list[PickedLineRequest]:
        seen: set[str] = set()
        for line in lines:
            if line.line_id in seen:
                raise ValueError(f"line {line.line_id!r} is reported twice")
            seen.add(line.line_id)
        return lines


class ManualAssignmentRequest(ManualAssignment):
    line_id: Identifier
    location_id: Identifier
    quantity: PositiveQty | None = None


class AssignmentsRequest(AssignmentsInput):
    assignments: list[ManualAssignmentRequest] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_MESSAGE_LINES
    )


class DeliveryRequest(Delivery):
    pickup_location_id: Identifier | None = None


class OrderRequest(OrderInput):
    # the web shop's own id for the order, unique within its channel (oms/ids.py)
    order_id: Identifier
    delivery: DeliveryRequest = Field(default_factory=DeliveryRequest)
