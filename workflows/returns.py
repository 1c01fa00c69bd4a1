"""ReturnWorkflow: one customer return (RMA) of delivered units, a child of its order.

open (store row, return label and return note) -> wait for the parcel (`receive` by the
receiving location) or the deadline -> disposition per unit (back to stock, discarded,
back to the vendor) -> refund notice to the channel -> the order hears the outcome
(`return_settled`). A return not received by its deadline expires: nothing is refunded.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls
    from workflows.model import (
        DisposeReturnInput,
        OpenReturnInput,
        OpenReturnResult,
        ReceivedLine,
        ReceiveReturnInput,
        RefundNoticeInput,
        ReturnOutcome,
        ReturnWorkflowInput,
        SettleReturnInput,
        disposition_for,
    )


def return_workflow_id(order_id: str, seq: int) -> str:
    return f"order-{order_id}-return-{seq}"


def return_id_for(order_id: str, seq: int) -> str:
    return f"{order_id}-RMA{seq}"


@workflow.defn(name="ReturnWorkflow")
class ReturnWorkflow:
    @workflow.init
    def __init__(self, input: ReturnWorkflowInput) -> None:
        self.input = input
        self.status = "OPEN"
        self.received: list[ReceivedLine] | None = None
        self.outcome: ReturnOutcome | None = None
        self.vendor_work_order: str | None = None

    @workflow.run
    async def run(self, input: ReturnWorkflowInput) -> ReturnOutcome:
        workflow.set_current_details(
            f"**OPEN** waiting for the parcel at {input.location_id} until {input.expires_at}"
        )
        await activity_calls.call(
            "open_return", OpenReturnInput(input=input, reason=input.reason_code), OpenReturnResult
        )
        wait = max(input.expires_at - workflow.now(), timedelta(seconds=0))
        try:
            await workflow.wait_condition(lambda: self.received is not None, timeout=wait)
        except TimeoutError:
            pass
        if self.received is None:
            self.status = "EXPIRED"
            outcome = ReturnOutcome(return_id=input.return_id, status="EXPIRED")
        else:
            received = self.received
            await activity_calls.run(
                "dispose_return", DisposeReturnInput(input=input, received=received)
            )
            if any(r.quantity and r.disposition == "RETURN_TO_VENDOR" for r in received):
                try:
                    self.vendor_work_order = await activity_calls.call(
                        "open_vendor_work_order",
                        DisposeReturnInput(input=input, received=received),
                        str,
                    )
                except ActivityError as err:
                    # the location refused or cannot be reached: the work order is in
                    # its list all the same (written first)
                    workflow.logger.warning("vendor work order not sent: %s", err.cause or err)
            refund = self._refund(received)
            if refund is not None:
                try:
                    await activity_calls.run(
                        "send_refund_notice",
                        RefundNoticeInput(input=input, received=received, refund_amount=refund),
                    )
                except ActivityError as err:
                    # the channel refused it: the return is settled all the same, and the
                    # refund stays on record for the channel to fetch
                    workflow.logger.warning("refund notice refused: %s", err.cause or err)
            self.status = "RECEIVED"
            outcome = ReturnOutcome(
                return_id=input.return_id,
                status="RECEIVED",
                received=received,
                refund_amount=refund,
            )
        await activity_calls.run("settle_return", SettleReturnInput(outcome=outcome))
        self.outcome = outcome
        workflow.set_current_details(f"**{outcome.status}**")
        parent = workflow.info().parent
        if parent is not None:
            try:
                await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                    "return_settled", outcome
                )
            except ApplicationError:
                workflow.logger.info("order %s closed before return settled", input.order_id)
        return outcome

    def _refund(self, received: list[ReceivedLine]) -> Decimal | None:
        """Received units at their price, less the channel's return shipping fee (never
        below zero); None when nothing came back."""
        prices = {item.line_id: item.unit_price for item in self.input.items}
        units = sum(line.quantity for line in received)
        if units == 0:
            return None
        gross = sum((prices[line.line_id] * line.quantity for line in received), Decimal("0"))
        return max(gross - self.input.shipping_fee, Decimal("0")).quantize(Decimal("0.01"))

    @workflow.update
    async def receive(self, request: ReceiveReturnInput) -> ReturnOutcome:
        if self.received is None:
            requested = {item.line_id: item for item in self.input.items}
            received: list[ReceivedLine] = []
            for line in request.lines:
                disposition = disposition_for(
                    self.input.disposition_rules,
                    self.input.disposition,
                    self.input.reason_code,
                    line.condition,
                )
                received.append(
                    ReceivedLine(
                        line_id=line.line_id,
                        quantity=line.quantity,
                        condition=line.condition,
                        disposition=disposition if line.quantity else None,
                    )
                )
            # lines the parcel did not hold count as none received
            named = {line.line_id for line in request.lines}
            received.extend(
                ReceivedLine(line_id=lid, quantity=0) for lid in requested if lid not in named
            )
            self.received = received
        await workflow.wait_condition(lambda: self.outcome is not None)
        assert self.outcome is not None
        return self.outcome

    @receive.validator
    def _check_receive(self, request: ReceiveReturnInput) -> None:
        if self.status != "OPEN" or self.received is not None:
            raise ApplicationError(
                f"return {self.input.return_id} is {self.status}: received already or expired",
                type="ReturnClosed",
            )
        requested = {item.line_id: item.quantity for item in self.input.items}
        seen: set[str] = set()
        for line in request.lines:
            if line.line_id not in requested:
                raise ApplicationError(
                    f"line {line.line_id} is not part of return {self.input.return_id}",
                    type="InvalidReturn",
                )
            if line.line_id in seen:
                raise ApplicationError(f"line {line.line_id} named twice", type="InvalidReturn")
            seen.add(line.line_id)
            if line.quantity > requested[line.line_id]:
                raise ApplicationError(
                    f"line {line.line_id}: {line.quantity} received, "
                    f"{requested[line.line_id]} were returned",
                    type="InvalidReturn",
                )

    @workflow.query
    def state(self) -> str:
        return self.status
