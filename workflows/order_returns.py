"""The order's returns: after delivery, within the channel's return window, the customer
sends delivered units back. Each return is a ReturnWorkflow child (workflows/returns.py);
the order keeps the list, the units returned per line and its status
(PARTIALLY_RETURNED, RETURNED), and closes as COMPLETED once the window is over and no
return is open."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls
    from workflows.model import (
        FulfillmentProgress,
        OrderStatus,
        ReturnItem,
        ReturnLine,
        ReturnOutcome,
        ReturnRequestInput,
        ReturnRequestLine,
        ReturnView,
        ReturnWorkflowInput,
        TrackingNotice,
        TrackingUpdate,
    )
    from workflows.returns import ReturnWorkflow, return_id_for, return_workflow_id

from workflows.order_base import OrderBase, failure_text

# statuses in which delivered units may be returned
RETURNABLE = (OrderStatus.DELIVERED, OrderStatus.PARTIALLY_RETURNED)
# the most returns one order takes (each is a child workflow and an entry in the view)
MAX_RETURNS = 50


class OrderReturns(OrderBase):
    returns_enabled: bool
    return_window_end: datetime | None
    # returns whose workflow is being started: shown in the order (and so to the API)
    # only once it runs, so a parcel reported at once finds it; counted meanwhile
    returns_opening: list[ReturnView]

    def _returns(self) -> list[ReturnView]:
        return [*self.view.returns, *self.returns_opening]

    def _next_return_seq(self) -> int:
        return sum(1 for r in self._returns() if r.type != "CANCEL") + 1

    def _returnable(self) -> dict[str, int]:
        """Per line: delivered units not yet returned nor in an open return."""
        pending: dict[str, int] = {}
        for ret in self._returns():
            if ret.type == "RETURN" and ret.status == "OPEN":
                for line in ret.lines:
                    pending[line.line_id] = pending.get(line.line_id, 0) + line.quantity
        return {
            line.line_id: line.delivered_quantity
            - line.returned_quantity
            - pending.get(line.line_id, 0)
            for line in self.view.lines
        }

    def _open_returns(self) -> bool:
        return any(r.type != "CANCEL" and r.status == "OPEN" for r in self._returns())

    @workflow.update
    async def request_return(self, request: ReturnRequestInput) -> ReturnView:
        seq = self._next_return_seq()
        now = workflow.now()
        return_id = return_id_for(self.order.order_id, seq)
        location_id = request.location_id or self._shipped_from(request.lines[0].line_id)
        ret = ReturnView(
            return_id=return_id,
            type="RETURN",
            lines=[ReturnLine(line_id=ln.line_id, quantity=ln.quantity) for ln in request.lines],
            status="OPEN",
            reason=request.comment or "",
            reason_code=request.reason_code,
            location_id=location_id,
            created_at=now,
            expires_at=now + timedelta(days=self.channel.return_expiry_days),
        )
        self.returns_opening.append(ret)
        self._event(
            "return_requested",
            f"{return_id} ({request.reason_code}) to {location_id}: "
            + ", ".join(f"{ln.line_id} x {ln.quantity}" for ln in request.lines),
        )
        await self._start_return(seq, ret, request.lines, self.channel.return_shipping_fee)
        await self._publish()
        return ret

    async def _start_return(
        self,
        seq: int,
        ret: ReturnView,
        lines: list[ReturnRequestLine] | list[ReturnLine],
        shipping_fee: Decimal,
    ) -> None:
        by_line = {line.line_id: line for line in self.view.lines}
        assert ret.expires_at is not None and ret.location_id is not None
        await workflow.start_child_workflow(
            ReturnWorkflow.run,
            ReturnWorkflowInput(
                return_id=ret.return_id,
                order_id=self.order.order_id,
                sales_channel=self.order.sales_channel,
                currency=self.order.payment.currency,
                type=ret.type,
                location_id=ret.location_id,
                reason_code=ret.reason_code or ret.type.lower(),
                items=[
                    ReturnItem(
                        line_id=ln.line_id,
                        sku=by_line[ln.line_id].sku,
                        quantity=ln.quantity,
                        unit_price=by_line[ln.line_id].unit_price,
                    )
                    for ln in lines
                ],
                expires_at=ret.expires_at,
                shipping_fee=shipping_fee,
                disposition=self.channel.return_disposition,
                disposition_rules=self.channel.return_disposition_rules,
                order=self.order,
            ),
            id=return_workflow_id(self.order.order_id, seq),
            static_summary=f"{ret.type.lower()} {ret.return_id} to {ret.location_id}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        # its workflow runs: from now on the order shows it (and the API finds it)
        self.returns_opening.remove(ret)
        self.view.returns.append(ret)

    async def _return_to_sender(self, progress: FulfillmentProgress) -> None:
        """The carrier brings a shipment back: its units come back to the location that
        shipped them as a RETURN_TO_SENDER return (received, disposed and refunded like a
        customer's return, without the return shipping fee)."""
        seq = self._next_return_seq()
        if seq > MAX_RETURNS:
            return
        now = workflow.now()
        lines = [
            ReturnLine(line_id=lid, quantity=q) for lid, q in sorted(progress.quantities.items())
        ]
        ret = ReturnView(
            return_id=return_id_for(self.order.order_id, seq),
            type="RETURN_TO_SENDER",
            lines=lines,
            status="OPEN",
            reason=f"{progress.shipment_key} returned to sender",
            reason_code="returned_to_sender",
            location_id=progress.location_id,
            created_at=now,
            expires_at=now + timedelta(days=self.channel.return_expiry_days),
        )
        self.returns_opening.append(ret)
        self._event(
            "return_to_sender",
            f"{ret.return_id}: {progress.shipment_key} back to {progress.location_id}",
        )
        await self._start_return(seq, ret, lines, Decimal("0"))

    @request_return.validator
    def _check_return(self, request: ReturnRequestInput) -> None:
        if not getattr(self, "returns_enabled", False):
            raise ApplicationError(
                "this order was placed before returns were taken by the OMS",
                type="ReturnWindowClosed",
            )
        if self.view.status not in RETURNABLE:
            raise ApplicationError(
                f"order is {self.view.status.value}: only delivered units are returned",
                type="NotReturnable",
            )
        if self.return_window_end is None or workflow.now() > self.return_window_end:
            raise ApplicationError("the return window is over", type="ReturnWindowClosed")
        if self._next_return_seq() > MAX_RETURNS:
            raise ApplicationError(f"at most {MAX_RETURNS} returns per order", type="TooMany")
        returnable = self._returnable()
        asked: dict[str, int] = {}
        for line in request.lines:
            if line.line_id not in returnable:
                raise ApplicationError(f"no line {line.line_id}", type="InvalidReturn")
            asked[line.line_id] = asked.get(line.line_id, 0) + line.quantity
        for line_id, quantity in asked.items():
            if quantity > returnable[line_id]:
                raise ApplicationError(
                    f"line {line_id}: {quantity} to return, {returnable[line_id]} delivered "
                    "and not returned",
                    type="ExceedsDelivered",
                )
        if request.location_id is None and not self._shipped_from(request.lines[0].line_id):
            raise ApplicationError("no location to receive the return", type="InvalidReturn")

    def _shipped_from(self, line_id: str) -> str:
        progress = self.state.lines.get(line_id)
        if progress is None:
            return ""
        delivered = [a for a in progress.allocations if a.state == "delivered"]
        if not delivered:
            return ""
        # click and collect: the customer collected them at the pickup store
        return delivered[-1].transfer_to or delivered[-1].location_id

    @workflow.signal
    async def return_settled(self, outcome: ReturnOutcome) -> None:
        ret = next((r for r in self._returns() if r.return_id == outcome.return_id), None)
        if ret is None or ret.status != "OPEN":
            return  # repeated, or not this order's
        ret.status = outcome.status
        ret.received = outcome.received
        ret.refund_amount = outcome.refund_amount
        if ret.type == "RETURN_TO_SENDER":
            # never delivered: the order's status already says so
            self._event(
                f"return_{outcome.status.lower()}",
                f"{ret.return_id}: back at {ret.location_id}, refund "
                f"{outcome.refund_amount or 0} {self.order.payment.currency}",
            )
            await self._publish()
            return
        by_line = {line.line_id: line for line in self.view.lines}
        for received in outcome.received:
            line = by_line.get(received.line_id)
            if line is not None:
                line.returned_quantity += received.quantity
        units = sum(r.quantity for r in outcome.received)
        if outcome.status == "EXPIRED":
            self._event("return_expired", f"{ret.return_id}: not received in time")
        else:
            self._event(
                "return_received",
                f"{ret.return_id}: {units} units, refund {outcome.refund_amount or 0} "
                f"{self.order.payment.currency}",
            )
        delivered = sum(line.delivered_quantity for line in self.view.lines)
        returned = sum(line.returned_quantity for line in self.view.lines)
        if returned and returned >= delivered:
            await self._set_status(OrderStatus.RETURNED, f"{returned} units returned")
        elif returned and self.view.status != OrderStatus.PARTIALLY_RETURNED:
            await self._set_status(
                OrderStatus.PARTIALLY_RETURNED, f"{returned} of {delivered} units returned"
            )
        else:
            await self._publish()

    @workflow.signal
    async def tracking_event(self, update: TrackingUpdate) -> None:
        """A shipment's new tracking event (the API sends each event id once): into the
        audit trail, and on to the channel as a status update."""
        where = f" in {update.place}" if update.place else ""
        self._event(
            f"tracking_{update.status.lower()}"[:64],
            f"{update.shipment_key}: {update.status}{where} at {update.at.isoformat()}",
        )
        self.notices.append(asyncio.create_task(self._send_tracking(update)))
        await self._publish()

    async def _send_tracking(self, update: TrackingUpdate) -> None:
        notice = TrackingNotice(
            order_id=self.order.order_id, sales_channel=self.order.sales_channel, update=update
        )
        try:
            await activity_calls.call("send_tracking_update", notice, bool)
        except ActivityError as err:
            self._event(
                "tracking_update_failed",
                f"{update.shipment_key} {update.status}: {failure_text(err)}",
            )
            await self._publish()

    async def _take_returns(self) -> None:
        """The return window of a delivered order: returns come and go; the order completes
        when the window is over and no return is still open. An order whose every unit
        came back undelivered (RETURNED) completes once those returns are received."""
        if self.view.status == OrderStatus.DELIVERED:
            window = timedelta(days=self.channel.return_window_days)
            self.return_window_end = workflow.now() + window
            workflow.set_current_details(
                f"**DELIVERED** return window open until "
                f"{self.return_window_end:%Y-%m-%d %H:%M} UTC"
            )
            await workflow.sleep(window)
        await workflow.wait_condition(lambda: not self._open_returns())
        await self._set_status(OrderStatus.COMPLETED, "return window over")
