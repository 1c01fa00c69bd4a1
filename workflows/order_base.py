"""Shared state and bookkeeping of the order workflow: what it remembers, its view, status
changes with their search attributes, and the projection into the store.

The workflow class is assembled from one class per responsibility (routing, approval,
cancelation; see order.py); Temporal registers the handlers each of them defines.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls, search
    from workflows.approval import ApprovalBook
    from workflows.model import (
        ApprovalStatus,
        CancelInput,
        CancelOrderInput,
        CancelOrderResult,
        OrderInput,
        OrderProjection,
        OrderStatus,
        OrderView,
        ResumeInput,
        ReturnLine,
        ReturnView,
        RoutingDecision,
        SalesChannelConfig,
    )
    from workflows.order_state import (
        OrderState,
    )

TERMINAL = (OrderStatus.CANCELLED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
# statuses nothing may leave (DELIVERED still moves on to COMPLETED)
FINAL = (OrderStatus.CANCELLED, OrderStatus.COMPLETED)
# fulfillment statuses a refused work order turns into ON_HOLD
HOLDABLE = (OrderStatus.IN_FULFILLMENT, OrderStatus.PARTIALLY_SHIPPED)
# the most lines one message may name (an order has at most 500 lines)
MAX_LINES = 500
# statuses before fulfillment in which routing may still be waiting for the operator
ROUTING_WAITS = (OrderStatus.ON_HOLD, OrderStatus.NOT_ANNOUNCED, OrderStatus.CHECK_ANNOUNCED)


class OrderBase:
    """What every part of the order workflow shares; set in OrderWorkflow.__init__."""

    order: OrderInput
    state: OrderState
    approvals: ApprovalBook
    channel: SalesChannelConfig
    lock: asyncio.Lock
    # the versioned behaviours this run has (workflows/patches.py), decided once per run
    guarded: bool
    abandon_children: bool
    partners_apart: bool
    resumes: int
    publish_lock: asyncio.Lock
    resume_request: ResumeInput | None
    route_due: bool
    stock_waits: int
    cancels_in_flight: int
    notices: list[asyncio.Task[None]]
    children: list[workflow.ChildWorkflowHandle[Any, Any]]

    # provided by the cancelation and routing parts
    async def _cancel(self, request: CancelInput) -> list[ReturnLine]:
        raise NotImplementedError

    async def _route_until_assigned(self) -> None:
        raise NotImplementedError

    @property
    def view(self) -> OrderView:
        return self.state.view

    @property
    def closed(self) -> bool:
        return self.view.status in TERMINAL

    def _stopped(self) -> bool:
        """True when no further pre-fulfillment stage may run: the order is closed, or every
        line is cancelled or has a cancel in flight (it will end CANCELLED)."""
        return self.closed or self.state.nothing_left_to_do()

    def _halt(self) -> bool:
        """The one check every stage makes after taking the lock and after each activity
        (histories from before the guard keep their old path)."""
        return self.guarded and self._stopped()

    def _ended(self) -> bool:
        """What waits inside a stage wake up for besides their own event."""
        return self._stopped() if self.guarded else self.closed

    @workflow.query(name="state")
    def current_state(self) -> OrderView:
        return self.view

    def _event(self, kind: str, detail: str = "") -> None:
        self.state.event(workflow.now(), kind, detail)

    async def _set_status(self, status: OrderStatus, detail: str = "") -> bool:
        """The only place the order status changes; a final status is never left.
        False when the change was refused."""
        previous = self.view.status
        if self.guarded and previous in FINAL and status != previous:
            workflow.logger.info("status %s kept: not changed to %s", previous, status)
            return False
        self.view.status = status
        self._event(
            f"status_{status.value.lower()}", detail or f"{previous.value} -> {status.value}"
        )
        workflow.set_current_details(f"**{status.value}** {detail}".strip())
        self._upsert_search_attributes()
        await self._publish(
            with_approvals=status
            in (
                OrderStatus.AWAITING_APPROVAL,
                OrderStatus.DECLINED,
                OrderStatus.APPROVED,
                OrderStatus.CANCELLED,
            )
        )
        return True

    def _upsert_search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                search.ORDER_STATUS.value_set(self.view.status.value),
                search.LOCATIONS.value_set(self.state.locations()),
                search.AWAITING_APPROVAL.value_set(
                    self.view.status == OrderStatus.AWAITING_APPROVAL
                    and any(a.status == ApprovalStatus.PENDING for a in self.view.approvals)
                ),
            ]
        )

    async def _publish(self, *, with_approvals: bool = False) -> None:
        """Write status, lines and new events to the store (a local activity: no extra
        round trip through the server for bookkeeping)."""
        async with self.publish_lock:
            events = self.state.take_events()
            projection = OrderProjection(
                order_id=self.view.order_id,
                sales_channel=self.view.sales_channel,
                customer_id=self.view.customer_id,
                status=self.view.status,
                total=Decimal(self.view.total),
                currency=self.view.currency,
                created_at=self.view.created_at,
                updated_at=self.view.updated_at,
                lines=self.view.lines,
                new_events=events,
                approvals=list(self.view.approvals) if with_approvals else None,
                view=self.view,
            )
            try:
                await workflow.execute_local_activity(
                    "project_order",
                    projection,
                    start_to_close_timeout=timedelta(seconds=30),
                )
            except asyncio.CancelledError:
                # the workflow was cancelled mid-write: the next projection carries these
                self.state.unpublished_events[:0] = events
                raise

    async def _refresh_fulfillment_status(self) -> None:
        self.state.refresh_lines()
        status = self.state.fulfillment_status()
        if status == OrderStatus.CANCELLED and self.cancels_in_flight:
            # the cancel in flight closes the order once its return is recorded
            status = self.view.status
        elif self.partners_apart and self.state.rejected_deliveries and status in HOLDABLE:
            status = OrderStatus.ON_HOLD  # a partner refused a work order: resume after the fix
        if status != self.view.status:
            await self._set_status(status)
        else:
            self._upsert_search_attributes()
            await self._publish()

    async def _record_cancel_return(
        self, return_id: str, lines: list[ReturnLine], reservation_ids: list[str], reason: str
    ) -> None:
        """Give back the reservations of cancelled units no location had yet and record
        the cancelled units' CANCEL return, in the store and in the view."""
        async with self.lock:
            await activity_calls.call(
                "cancel_order_lines",
                CancelOrderInput(
                    order_id=self.order.order_id,
                    return_id=return_id,
                    lines=lines,
                    reservation_ids=reservation_ids,
                    reason=reason,
                ),
                CancelOrderResult,
            )
        if lines:
            self.view.returns.append(
                ReturnView(
                    return_id=return_id, type="CANCEL", lines=lines, status="DONE", reason=reason
                )
            )

    def _apply_decisions(self, decisions: list[RoutingDecision]) -> None:
        for decision in decisions:
            self.state.apply_routing(decision)
            self._event(
                "line_routed" if decision.location_id else "line_not_routed",
                f"line {decision.line_id}: {decision.reason}",
            )
        self.state.refresh_lines()
        self._upsert_search_attributes()
