"""Routing part of the order workflow: routing rounds, CHECK_ANNOUNCED / NOT_ANNOUNCED
waits, manual assignments and resume.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls
    from workflows.model import (
        AssignLine,
        AssignLocationsInput,
        AssignLocationsResult,
        AssignmentsInput,
        CancelInput,
        OrderCommandResult,
        OrderStatus,
        ResumeInput,
        RouteLine,
        RouteOrderInput,
        RouteOrderResult,
    )

from workflows.order_base import MAX_LINES, ROUTING_WAITS, OrderBase


class OrderRouting(OrderBase):
    async def _wait_for_resume(self) -> bool:
        """Wait for `resume` or a cancel; True when resumed. (Guarded runs forget an
        earlier resume before they announce the wait, so a resume sent while the status
        is being written is not lost.)"""
        if not self.guarded:
            self.resume_request = None
        # also wakes when a cancel took away every line that was waiting
        await workflow.wait_condition(
            lambda: (
                self.resume_request is not None or self.closed or not self.state.lines_to_route()
            )
        )
        return not self.closed

    async def _route_initial(self) -> None:
        await self._set_status(OrderStatus.ROUTING)
        await self._route_until_assigned()

    async def _route_until_assigned(self) -> None:
        while True:
            result = await self._route()
            if self._halt() or not self.state.lines_to_route():
                return
            reasons = (
                result.reasons
                if result and result.reasons
                else [
                    f"line {p.line_id}: no location has {p.open} x {p.sku}"
                    for p in self.state.lines_to_route()
                ]
            )
            status = (
                OrderStatus.CHECK_ANNOUNCED
                if result is not None and result.outcome == "check_announced"
                else OrderStatus.NOT_ANNOUNCED
            )
            self.view.hold_reasons = reasons
            if self.guarded:
                self.resume_request = None  # a resume from here on counts
            await self._set_status(status, "; ".join(reasons))
            if status == OrderStatus.NOT_ANNOUNCED and self.channel.auto_cancel_not_announced:
                await self._cancel(CancelInput(reason="not announced: " + "; ".join(reasons)))
                return
            # waits for a manual assignment, a resume (route again) or a cancel
            if not await self._wait_for_resume() or self._halt():
                return
            self.view.hold_reasons = []
            if not self.state.lines_to_route():
                await self._set_status(OrderStatus.ROUTING, "assigned manually")
                return
            await self._set_status(OrderStatus.ROUTING, "retry after resume")

    async def _route(self, *, per_line: bool = False) -> RouteOrderResult | None:
        """Route every open unit; the lines are read under the lock, after any cancel.
        A failing round is shown (and a business failure holds the order) outside the
        lock, then the lines are read again."""
        while True:
            async with self.lock:
                lines = self.state.lines_to_route()
                if not lines or self._halt():
                    return None
                workflow.set_current_details("routing " + ", ".join(p.line_id for p in lines))
                request = RouteOrderInput(
                    order_id=self.order.order_id,
                    sales_channel=self.order.sales_channel,
                    ship_to=self.order.ship_to,
                    delivery=self.order.delivery,
                    per_line=per_line,
                    lines=[
                        RouteLine(
                            line_id=p.line_id, sku=p.sku, quantity=p.open, attempt=p.attempts + 1
                        )
                        for p in lines
                    ],
                )
                if self.stage_holds:
                    outcome = await self._attempt(
                        "routing", "route_order", request, RouteOrderResult
                    )
                else:
                    outcome = await activity_calls.call("route_order", request, RouteOrderResult)
                if not isinstance(outcome, ActivityError):
                    self._apply_decisions(outcome.decisions)
            if isinstance(outcome, ActivityError):
                if not await self._stage_failed("routing", outcome):
                    return None
                continue
            await self._publish()
            return outcome

    @workflow.update
    async def assign_locations(self, request: AssignmentsInput) -> OrderCommandResult:
        async with self.lock:
            # checked again: another assignment may have taken these units meanwhile
            self._validate_assignments(request)
            lines = [
                AssignLine(
                    line_id=a.line_id,
                    sku=self.state.lines[a.line_id].sku,
                    quantity=a.quantity or self.state.lines[a.line_id].open,
                    attempt=self.state.lines[a.line_id].attempts + 1,
                    location_id=a.location_id,
                )
                for a in request.assignments
            ]
            result = await activity_calls.call(
                "assign_locations",
                AssignLocationsInput(
                    order_id=self.order.order_id,
                    lines=lines,
                    pickup_location_id=self.order.delivery.pickup_location_id
                    if self.order.delivery.type == "pickup"
                    else None,
                ),
                AssignLocationsResult,
            )
            if result.refused:
                raise ApplicationError(
                    "; ".join(result.refused.values()),
                    type="InsufficientStock",
                    non_retryable=True,
                )
            self._apply_decisions(result.decisions)
            self._event("assigned_manually", request.comment or "")
        await self._publish()
        return OrderCommandResult(status=self.view.status)

    @assign_locations.validator
    def _validate_assignments(self, request: AssignmentsInput) -> None:
        if not 0 < len(request.assignments) <= MAX_LINES:
            raise ApplicationError(
                f"name 1 to {MAX_LINES} assignments", type="InvalidQuantity", non_retryable=True
            )
        backordered = bool(self.state.release_seq) and bool(self.state.lines_to_route())
        if (self.guarded and self._stopped()) or (
            self.view.status not in (OrderStatus.CHECK_ANNOUNCED, OrderStatus.NOT_ANNOUNCED)
            and not backordered
        ):
            raise ApplicationError(
                f"order is {self.view.status.value}: assignments are for orders waiting in "
                "CHECK_ANNOUNCED or NOT_ANNOUNCED, or for backordered units",
                type="NotAssignable",
                non_retryable=True,
            )
        pairs = [(a.line_id, a.location_id) for a in request.assignments]
        if len(set(pairs)) != len(pairs):
            raise ApplicationError(
                "a line is assigned to the same location twice",
                type="InvalidQuantity",
                non_retryable=True,
            )
        asked: dict[str, int] = {}
        for a in request.assignments:
            line = self.state.lines.get(a.line_id)
            if line is None:
                raise ApplicationError(
                    f"unknown line {a.line_id}", type="UnknownLine", non_retryable=True
                )
            asked[a.line_id] = asked.get(a.line_id, 0) + (a.quantity or line.open)
        for line_id, quantity in asked.items():
            line = self.state.lines[line_id]
            if line_id in self.state.cancelling or quantity > line.open or quantity == 0:
                raise ApplicationError(
                    f"line {line_id} has {line.open} units to assign, not {quantity}",
                    type="InvalidQuantity",
                    non_retryable=True,
                )

    @workflow.update
    def resume_order(self, request: ResumeInput) -> OrderCommandResult:
        self._resume(request)
        return OrderCommandResult(status=self.view.status)

    @resume_order.validator
    def _validate_resume(self, request: ResumeInput) -> None:
        waiting_for_stock = self.state.release_seq and self.state.lines_to_route()
        waiting_for_partner = self.partners_apart and bool(self.state.delivery_problems)
        # a failing stage: resume starts its next round at once
        stage_failing = self.stage_holds and bool(self.stage_problems)
        if (self.guarded and self._stopped()) or (
            self.view.status not in ROUTING_WAITS
            and not waiting_for_stock
            and not waiting_for_partner
            and not stage_failing
        ):
            raise ApplicationError(
                f"order is {self.view.status.value}, nothing to resume",
                type="NotResumable",
                non_retryable=True,
            )

    @workflow.signal(name="resume")
    async def resume_signal(self, request: ResumeInput) -> None:
        try:
            self._validate_resume(request)
        except ApplicationError as err:
            self._event("resume_ignored", str(err))
            if self.guarded:
                await self._publish()  # the audit trail (read from the store) shows it
            return
        self._resume(request)

    def _resume(self, request: ResumeInput) -> None:
        self.resumes += 1  # wakes work orders waiting for a partner's fix
        self.resume_request = request
        self.route_due = True
        self.stock_waits = 0
        self._event("resumed", request.comment or "")
