"""Cancelation part of the order workflow: whole orders or some lines, any time before
they ship; units already at a location are cancelled when its release confirms.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls
    from workflows.fulfillment import fulfillment_workflow_id
    from workflows.model import (
        CancelInput,
        CancelLinesInput,
        OrderCommandResult,
        OrderStatus,
        ReturnLine,
        WorkOrderCancelledInput,
    )
    from workflows.order_state import shipment_key, work_order_id

from workflows.order_base import FINAL, MAX_LINES, ROUTING_WAITS, OrderBase


class OrderCancellation(OrderBase):
    @workflow.update
    async def cancel(self, request: CancelInput) -> OrderCommandResult:
        # looked at before this cancel marks its own lines as being cancelled
        already = self._already_cancelled(self._requested_lines(request))
        cancelled = await self._cancel(request)
        if not cancelled and not already and not (self.guarded and self._cancelled_now(request)):
            raise ApplicationError(
                "the lines shipped before they could be cancelled",
                type="NotCancellable",
                non_retryable=True,
            )
        return OrderCommandResult(status=self.view.status)

    def _requested_lines(self, request: CancelInput) -> list[str]:
        """The lines a cancel names (every line when it names none), each once."""
        if request.line_ids is None:
            return list(self.state.lines)
        return list(dict.fromkeys(request.line_ids))

    def _already_cancelled(self, line_ids: list[str]) -> bool:
        """Every one of these lines is cancelled or has a cancel in flight: a repeated
        cancel is answered like the first one, and changes nothing (histories from before
        the guard refused it)."""
        return (
            self.guarded
            and bool(line_ids)
            and all(
                lid in self.state.cancelling
                or self.state.lines[lid].cancelled >= self.state.lines[lid].quantity
                for lid in line_ids
            )
        )

    def _cancelled_now(self, request: CancelInput) -> bool:
        """Every requested line ended cancelled (e.g. a racing cancel took its units)."""
        return all(
            self.state.lines[lid].cancelled >= self.state.lines[lid].quantity
            for lid in self._requested_lines(request)
        )

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        if self.view.status in FINAL:
            raise ApplicationError(
                f"order is {self.view.status.value}", type="NotCancellable", non_retryable=True
            )
        if (
            self.guarded
            and request.line_ids is not None
            and not 0 < len(request.line_ids) <= MAX_LINES
        ):
            raise ApplicationError(
                f"line_ids names 1 to {MAX_LINES} lines; leave it out to cancel the order",
                type="InvalidQuantity",
                non_retryable=True,
            )
        line_ids = self._requested_lines(request)
        unknown = [lid for lid in line_ids if lid not in self.state.lines]
        if unknown:
            raise ApplicationError(
                f"unknown lines {unknown[:10]}", type="UnknownLine", non_retryable=True
            )
        if self.closed and not self._already_cancelled(line_ids):
            raise ApplicationError(
                f"order is {self.view.status.value}", type="NotCancellable", non_retryable=True
            )
        if not self.state.cancellable(line_ids) and not self._already_cancelled(line_ids):
            raise ApplicationError(
                "the lines have shipped or are cancelled already",
                type="NotCancellable",
                non_retryable=True,
            )

    @workflow.signal
    async def cancel_order(self, request: CancelInput) -> None:
        try:
            self._validate_cancel(request)
        except ApplicationError as err:
            self._event("cancel_ignored", str(err))
            if self.guarded:
                await self._publish()  # the audit trail (read from the store) shows it
            return
        await self._cancel(request)

    def _tell_locations(self, holding: dict[str, list[str]], reason: str) -> None:
        """A location that was sent a work order hears which of its lines are cancelled
        (in the background, with bounded retries: a partner that is down must not hold
        back the cancel)."""
        order_id = self.order.order_id
        for key, lids in holding.items():
            seq = int(key.rsplit("-R", 1)[1])
            if work_order_id(order_id, seq) not in self.state.sent_work_orders:
                continue
            cancelled = [
                (lid, a.location_id, a.transfer_to)
                for lid in dict.fromkeys(lids)
                for a in self.state.lines[lid].allocations
                if a.release_key == key and a.state == "cancelled"
            ]
            if not cancelled:
                continue
            notice = WorkOrderCancelledInput(
                order_id=order_id,
                location_id=cancelled[0][1],
                work_order_id=work_order_id(order_id, seq),
                shipment_key=shipment_key(order_id, seq),
                line_ids=[lid for lid, _, _ in cancelled],
                reason=reason,
                transfer_to=cancelled[0][2],
            )
            self.notices.append(asyncio.create_task(self._send_cancel_notice(notice)))

    async def _send_cancel_notice(self, notice: WorkOrderCancelledInput) -> None:
        what = f"{notice.work_order_id} lines {', '.join(notice.line_ids)} to {notice.location_id}"
        try:
            await activity_calls.call("notify_work_order_cancelled", notice, bool)
        except ActivityError as err:
            self._event("work_order_cancel_notice_failed", f"{what}: {err.cause or err}")
        else:
            self._event("work_order_cancel_sent", what)
        await self._publish()

    async def _cancel(self, request: CancelInput) -> list[ReturnLine]:
        """Cancel what has not shipped of these lines; returns the units this cancel put
        on its CANCEL return."""
        guarded = self.guarded
        if not guarded:  # as before the guard (workflows/patches.py)
            line_ids = self.state.cancellable(request.line_ids or list(self.state.lines))
        else:
            line_ids = self._requested_lines(request)
            if self.view.status in FINAL:
                return []
        before = {lid: self.state.lines[lid].cancelled for lid in line_ids}
        self.cancels_in_flight += 1
        try:
            lines = await self._cancel_lines(request, line_ids, before, guarded)
        finally:
            self.cancels_in_flight -= 1
        if guarded and self.cancels_in_flight == 0:
            # the last cancel in flight settles the order's status (decided right after the
            # count went down, so two cancels finishing together cannot both leave it)
            await self._settle_after_cancel(request.reason)
        return lines

    async def _cancel_lines(
        self, request: CancelInput, line_ids: list[str], before: dict[str, int], guarded: bool
    ) -> list[ReturnLine]:
        async with self.lock:
            line_ids = self.state.cancellable(line_ids) if guarded else line_ids
            # from here a pick shortfall on these lines cancels units instead of re-routing
            self.state.cancelling.update(line_ids)
            reservations = self.state.cancel_unreleased(line_ids)
            self.state.return_seq += 1
            return_id = f"{self.order.order_id}-C{self.state.return_seq}"
            if line_ids:
                self._event("cancel_requested", f"lines {', '.join(line_ids)}: {request.reason}")
            holding = self.state.releases_holding(line_ids)
            for key, lids in holding.items():
                seq = int(key.rsplit("-R", 1)[1])
                child = workflow.get_external_workflow_handle(
                    fulfillment_workflow_id(self.order.order_id, seq)
                )
                try:
                    await child.signal(
                        "cancel_lines", CancelLinesInput(line_ids=lids, reason=request.reason)
                    )
                except ApplicationError:
                    # the release's workflow has closed: its last report to this order was
                    # sent before it closed, and settles these lines
                    workflow.logger.info("release %s closed before the cancel", key)
        # units already at a location are cancelled when the location's workflow confirms;
        # a cancel racing this one for the same lines waits for the same confirmations
        requested = list(before)
        await workflow.wait_condition(lambda: not self.state.releases_holding(requested))
        if self.partners_apart:
            self._tell_locations(holding, request.reason)
        if guarded:
            # counted once: a concurrent cancel of the same units finds them taken
            taken = self.state.take_cancelled_for_return(line_ids)
            lines = [ReturnLine(line_id=lid, quantity=q) for lid, q in taken.items()]
        else:
            lines = [
                ReturnLine(line_id=lid, quantity=self.state.lines[lid].cancelled - before[lid])
                for lid in line_ids
                if self.state.lines[lid].cancelled > before[lid]
            ]
        # a cancel that found nothing left to cancel costs no round trip
        if not guarded or lines or reservations:
            await self._record_cancel_return(return_id, lines, reservations, request.reason)
        if guarded:
            return lines  # _cancel settles the status
        await self._settle_after_cancel(request.reason)
        return lines

    async def _settle_after_cancel(self, reason: str) -> None:
        if self.guarded and self.view.status in FINAL:
            return
        if self.view.status == OrderStatus.AWAITING_APPROVAL and self.state.all_done:
            for approval in self.approvals.withdraw_open():
                self._event("approval_withdrawn", f"{approval.reason}: order cancelled")
        lines = self.state.lines.values()
        if (
            self.state.all_done
            and not any(p.units("delivered") for p in lines)
            # units that came back to sender: the order is RETURNED and takes their
            # returns (histories from before cancelled it)
            and not (
                any(p.units("returned_to_sender") for p in lines) and self._cancel_decides_end()
            )
        ):
            if self.view.status != OrderStatus.CANCELLED:
                await self._set_status(OrderStatus.CANCELLED, reason)
        elif self.view.status not in ROUTING_WAITS and self.state.release_seq:
            await self._refresh_fulfillment_status()
        else:
            self.state.refresh_lines()
            await self._publish()
