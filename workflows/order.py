"""OrderWorkflow: one durable workflow per order, id `order-{order_id}`.

validation -> routing -> approval -> temporary response -> documents -> submission ->
one FulfillmentWorkflow child per location and release, re-routing backordered units
until every line is delivered or cancelled; then the return window, then COMPLETED.

Stage work runs under `self.lock` so a cancel or decision arriving mid-stage waits for
the stage's activity to finish instead of interleaving with it (safe message handlers).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls, search
    from workflows.approval import ApprovalBook, OrderFacts
    from workflows.fulfillment import FulfillmentWorkflow, fulfillment_workflow_id
    from workflows.model import (
        ApprovalDecisionInput,
        ApprovalNotice,
        ApprovalStatus,
        ApprovalUpdateResult,
        ApprovalView,
        AssignLine,
        AssignLocationsInput,
        AssignLocationsResult,
        AssignmentsInput,
        CancelInput,
        CancelLinesInput,
        CancelOrderInput,
        CancelOrderResult,
        DocumentsInput,
        DocumentsResult,
        FulfillmentInput,
        FulfillmentLine,
        FulfillmentProgress,
        LineView,
        NoticeKind,
        OrderCommandResult,
        OrderInput,
        OrderProjection,
        OrderResponseInput,
        OrderResponseResult,
        OrderStatus,
        OrderView,
        ReleasePlan,
        ReleaseReservationsInput,
        ReleaseReservationsResult,
        ResponseLine,
        ResumeInput,
        ReturnLine,
        ReturnView,
        RouteLine,
        RouteOrderInput,
        RouteOrderResult,
        RoutingDecision,
        SalesChannelConfig,
        SubmitWorkOrdersInput,
        SubmitWorkOrdersResult,
        ValidateOrderInput,
        ValidateOrderResult,
    )
    from workflows.order_state import (
        LineProgress,
        OrderState,
        release_key,
        shipment_key,
        work_order_id,
    )

NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)
TERMINAL = (OrderStatus.CANCELLED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
# statuses before fulfillment in which routing may still be waiting for the operator
ROUTING_WAITS = (OrderStatus.ON_HOLD, OrderStatus.NOT_ANNOUNCED, OrderStatus.CHECK_ANNOUNCED)


def order_workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        now = workflow.now()
        self.order = order
        view = OrderView(
            order_id=order.order_id,
            sales_channel=order.sales_channel,
            customer_id=order.customer.id,
            status=OrderStatus.CREATED,
            created_at=now,
            updated_at=now,
            total=order.total,
            currency=order.payment.currency,
            lines=[
                LineView(
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                )
                for line in order.lines
            ],
        )
        self.state = OrderState(
            view=view,
            lines={
                line.line_id: LineProgress(
                    line_id=line.line_id, sku=line.sku, quantity=line.quantity, open=line.quantity
                )
                for line in order.lines
            },
        )
        self.approvals = ApprovalBook(view.approvals)
        self.channel = SalesChannelConfig(channel_id=order.sales_channel)
        self.lock = asyncio.Lock()
        self.publish_lock = asyncio.Lock()
        self.resume_request: ResumeInput | None = None
        self.route_due = True
        self.stock_waits = 0
        self.cancels_in_flight = 0
        self.notices: list[asyncio.Task[None]] = []
        self.children: list[workflow.ChildWorkflowHandle[Any, Any]] = []
        self.state.event(now, "order_created", f"{len(order.lines)} lines, total {order.total}")

    @property
    def view(self) -> OrderView:
        return self.state.view

    @property
    def closed(self) -> bool:
        return self.view.status in TERMINAL

    # ================================================================== main flow
    @workflow.run
    async def run(self, order: OrderInput) -> OrderView:
        await self._validate()
        if not self.closed:
            await self._route_initial()
        if not self.closed:
            await self._approve()
        if not self.closed:
            await self._respond()
        if not self.closed:
            await self._fulfil()
        if self.view.status == OrderStatus.DELIVERED:
            workflow.set_current_details("delivered; return window open")
            await workflow.sleep(timedelta(days=self.channel.return_window_days))
            await self._set_status(OrderStatus.COMPLETED, "return window over")
        if self.notices:
            await asyncio.gather(*self.notices)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    async def _validate(self) -> None:
        while True:
            await self._set_status(OrderStatus.VALIDATING)
            async with self.lock:
                result: ValidateOrderResult = await activity_calls.call(
                    "validate_order", ValidateOrderInput(order=self.order), ValidateOrderResult
                )
            if result.channel is not None:
                self.channel = result.channel
            if not result.hold_reasons:
                self.view.hold_reasons = []
                await self._set_status(OrderStatus.VALIDATED)
                return
            self.view.hold_reasons = result.hold_reasons
            await self._set_status(OrderStatus.ON_HOLD, "; ".join(result.hold_reasons))
            if not await self._wait_for_resume():
                return
            if self.resume_request and self.resume_request.payment:
                self.order = self.order.model_copy(update={"payment": self.resume_request.payment})

    async def _wait_for_resume(self) -> bool:
        """Wait for `resume` or a cancel; True when resumed."""
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
            if not self.state.lines_to_route():
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
            await self._set_status(status, "; ".join(reasons))
            if status == OrderStatus.NOT_ANNOUNCED and self.channel.auto_cancel_not_announced:
                await self._cancel(CancelInput(reason="not announced: " + "; ".join(reasons)))
                return
            # waits for a manual assignment, a resume (route again) or a cancel
            if not await self._wait_for_resume():
                return
            self.view.hold_reasons = []
            if not self.state.lines_to_route():
                await self._set_status(OrderStatus.ROUTING, "assigned manually")
                return
            await self._set_status(OrderStatus.ROUTING, "retry after resume")

    async def _route(self, *, per_line: bool = False) -> RouteOrderResult | None:
        """Route every open unit; the lines are read under the lock, after any cancel."""
        async with self.lock:
            lines = self.state.lines_to_route()
            if not lines:
                return None
            workflow.set_current_details("routing " + ", ".join(p.line_id for p in lines))
            result: RouteOrderResult = await activity_calls.call(
                "route_order",
                RouteOrderInput(
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
                ),
                RouteOrderResult,
            )
            self._apply_decisions(result.decisions)
        await self._publish()
        return result

    def _apply_decisions(self, decisions: list[RoutingDecision]) -> None:
        for decision in decisions:
            self.state.apply_routing(decision)
            self._event(
                "line_routed" if decision.location_id else "line_not_routed",
                f"line {decision.line_id}: {decision.reason}",
            )
        self.state.refresh_lines()
        self._upsert_search_attributes()

    async def _approve(self) -> None:
        facts = OrderFacts.of(self.order, self.state.locations())
        if not self.approvals.plan(self.channel.approval_reasons, facts):
            for approval in self.view.approvals:
                self._event("approval_skipped", f"{approval.reason}: rule does not match")
            await self._set_status(OrderStatus.APPROVED, "no approval needed")
            return
        for approval in self.view.approvals:
            if approval.status == ApprovalStatus.SKIPPED:
                self._event("approval_skipped", f"{approval.reason}: rule does not match")
        await self._set_status(OrderStatus.AWAITING_APPROVAL)
        # ranks one after the other; all reasons of a rank at once
        while opened := self.approvals.open_next_rank(workflow.now()):
            for approval in opened:
                self._event(
                    "approval_requested",
                    f"{approval.reason} (rank {approval.rank}) "
                    f"from {', '.join(approval.approvers)}",
                )
            self._notify_approvers("request", opened)
            self._upsert_search_attributes()
            await self._publish(with_approvals=True)
            await self._wait_for_rank()
            if self.closed or self.approvals.declined is not None:
                break
        if self.closed:
            return
        declined = self.approvals.declined
        if declined is not None:
            withdrawn = self.approvals.withdraw_open()
            for approval in withdrawn:
                self._event(
                    "approval_withdrawn",
                    f"{approval.reason}: {declined.reason} was {declined.status.value}",
                )
            await self._set_status(
                OrderStatus.DECLINED,
                f"{declined.reason} {declined.status.value} by {declined.decided_by}",
            )
            await self._cancel(
                CancelInput(
                    reason=f"{declined.reason} {declined.status.value} by {declined.decided_by}"
                    + (f": {declined.comment}" if declined.comment else "")
                )
            )
            self._notify_approvers("withdraw", withdrawn)
            return
        if self.approvals.reroute_requested:
            await self._reroute_after_approval()
            if self.closed:
                return
        await self._set_status(OrderStatus.APPROVED)

    async def _wait_for_rank(self) -> None:
        """Wait until every reason of the open rank is decided, applying timeouts."""
        while not (self.approvals.rank_settled or self.closed):
            deadline = self.approvals.next_deadline()
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(
                    lambda: self.approvals.rank_settled or self.closed, timeout=timeout
                )
            except TimeoutError:
                escalated = []
                for approval, outcome in self.approvals.time_out_due(workflow.now()):
                    if outcome == "escalated":
                        escalated.append(approval)
                        self._event(
                            "approval_escalated",
                            f"{approval.reason} to {', '.join(approval.approvers)} after timeout",
                        )
                    else:
                        self._event("approval_timed_out", f"{approval.reason}: no decision")
                self._notify_approvers("request", escalated)
                await self._publish(with_approvals=True)

    def _notify_approvers(self, kind: NoticeKind, approvals: list[ApprovalView]) -> None:
        """Third-party approval systems hear of requests and withdrawals (if configured).
        In the background, with bounded retries: a system that is down must not hold back
        timeouts, declines or the stock a decline gives back."""
        webhooks = self.approvals.webhooks(approvals)
        if not webhooks:
            return
        notice = ApprovalNotice(
            order_id=self.order.order_id,
            kind=kind,
            approvals=[a.model_copy() for a in approvals],
            webhooks=webhooks,
        )

        async def send() -> None:
            try:
                await workflow.execute_activity(
                    "notify_approvers",
                    notice,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=NOTICE_RETRY,
                )
            except ActivityError as err:
                self._event(
                    "approval_notice_failed",
                    f"{kind} for {', '.join(sorted(webhooks))}: {err.cause or err}",
                )

        self.notices.append(asyncio.create_task(send()))

    async def _reroute_after_approval(self) -> None:
        """Stock may have moved while the order waited: route the lines again."""
        async with self.lock:
            reservations = self.state.unschedule()
            await activity_calls.call(
                "release_reservations",
                ReleaseReservationsInput(
                    order_id=self.order.order_id, reservation_ids=reservations
                ),
                ReleaseReservationsResult,
            )
        await self._set_status(OrderStatus.ROUTING, "re-routing after approval")
        await self._route_until_assigned()

    async def _respond(self) -> None:
        lines = [
            ResponseLine(line_id=lid, location_id=loc)
            for lid, p in self.state.lines.items()
            if (loc := p.current_location) is not None
        ]
        async with self.lock:
            result: OrderResponseResult = await activity_calls.call(
                "send_order_response",
                OrderResponseInput(
                    order_id=self.order.order_id,
                    sales_channel=self.order.sales_channel,
                    lines=lines,
                    as_of=workflow.now(),
                ),
                OrderResponseResult,
            )
        for line in self.view.lines:
            line.planned_ship_date = result.planned_ship_dates.get(line.line_id)
        dates = ", ".join(f"{k}: {v}" for k, v in sorted(result.planned_ship_dates.items()))
        await self._set_status(OrderStatus.RESPONDED, f"planned ship dates {dates}")

    # ================================================================== fulfillment
    async def _fulfil(self) -> None:
        while not self.state.all_done:
            if self.state.scheduled_by_location():
                async with self.lock:
                    await self._release_scheduled()
                continue
            to_route = self.state.lines_to_route()
            if to_route and self.route_due:
                # backordered units: each line routed on its own, under the same policy
                result = await self._route(per_line=True)
                if self.state.lines_to_route():
                    self.view.hold_reasons = result.reasons if result else []
                    await self._wait_for_stock()
                else:
                    self.view.hold_reasons = []
                continue
            timeout = timedelta(seconds=self.channel.backorder_retry_seconds) if to_route else None
            try:
                await workflow.wait_condition(
                    lambda: (
                        self.state.all_done
                        or bool(self.state.scheduled_by_location())
                        or (self.route_due and bool(self.state.lines_to_route()))
                    ),
                    timeout=timeout,
                )
            except TimeoutError:
                self.route_due = True
        # children have reported their last step; let them close before the order does
        for child in self.children:
            await child

    async def _wait_for_stock(self) -> None:
        self.route_due = False
        self.stock_waits += 1
        waiting = self.state.lines_to_route()
        if self.stock_waits > self.channel.backorder_max_attempts:
            ids = [p.line_id for p in waiting]
            self.state.cancel_open_units(ids)
            self._event(
                "backorder_cancelled",
                f"no stock after {self.stock_waits - 1} retries: lines {', '.join(ids)}",
            )
            await self._refresh_fulfillment_status()
            return
        self._event(
            "backorder_waiting", ", ".join(f"line {p.line_id}: {p.open} x {p.sku}" for p in waiting)
        )
        await self._publish()

    async def _release_scheduled(self) -> None:
        first = self.view.status in (OrderStatus.RESPONDED, OrderStatus.APPROVED)
        plans: list[ReleasePlan] = []
        allocations = {}
        for location_id, items in self.state.scheduled_by_location().items():
            seq = self.state.start_release([alloc for _, alloc in items])
            oid = self.order.order_id
            plan = ReleasePlan(
                seq=seq,
                location_id=location_id,
                line_ids=[lid for lid, _ in items],
                release_key=release_key(oid, seq),
                shipment_key=shipment_key(oid, seq),
                work_order_id=work_order_id(oid, seq),
            )
            plans.append(plan)
            allocations[seq] = items
        docs: DocumentsResult = await activity_calls.call(
            "create_documents",
            DocumentsInput(
                order=self.order, kinds=list(self.channel.document_kinds), releases=plans
            ),
            DocumentsResult,
        )
        self.view.documents.extend(docs.documents)
        if first:
            await self._set_status(
                OrderStatus.DOCUMENTED,
                ", ".join(f"{d.kind} for {d.location_id}" for d in docs.documents),
            )
        submitted: SubmitWorkOrdersResult = await activity_calls.call(
            "submit_work_orders",
            SubmitWorkOrdersInput(order_id=self.order.order_id, releases=plans),
            SubmitWorkOrdersResult,
        )
        self.view.work_orders.extend(submitted.work_orders)
        detail = ", ".join(f"{w.work_order_id} to {w.location_id}" for w in submitted.work_orders)
        if first:
            await self._set_status(OrderStatus.SUBMITTED, detail)
        else:
            self._event("work_orders_submitted", detail)
        skus = {line.line_id: line.sku for line in self.order.lines}
        for plan in plans:
            child_input = FulfillmentInput(
                order_id=self.order.order_id,
                location_id=plan.location_id,
                release_key=plan.release_key,
                shipment_key=plan.shipment_key,
                work_order_id=plan.work_order_id,
                lines=[
                    FulfillmentLine(
                        line_id=lid,
                        sku=skus[lid],
                        quantity=alloc.quantity,
                        reservation_id=alloc.reservation_id,
                    )
                    for lid, alloc in allocations[plan.seq]
                ],
            )
            handle = await workflow.start_child_workflow(
                FulfillmentWorkflow.run,
                child_input,
                id=fulfillment_workflow_id(self.order.order_id, plan.seq),
                static_summary=f"{plan.location_id}: release {plan.release_key}",
            )
            self.children.append(handle)
        await self._refresh_fulfillment_status()

    @workflow.signal
    async def fulfillment_progress(self, progress: FulfillmentProgress) -> None:
        self.state.apply_progress(progress, workflow.now())
        parts = ", ".join(f"line {k}: {v}" for k, v in sorted(progress.quantities.items()))
        if progress.backordered:
            parts += "; backordered " + ", ".join(
                f"line {k}: {v}" for k, v in sorted(progress.backordered.items())
            )
            self.route_due = True
        if progress.carrier:
            parts += f"; {progress.carrier} {progress.tracking_number}"
        self._event(
            f"shipment_{progress.kind}",
            f"{progress.shipment_key} at {progress.location_id}: {parts}",
        )
        await self._refresh_fulfillment_status()

    async def _refresh_fulfillment_status(self) -> None:
        self.state.refresh_lines()
        status = self.state.fulfillment_status()
        if status == OrderStatus.CANCELLED and self.cancels_in_flight:
            # the cancel in flight closes the order once its return is recorded
            status = self.view.status
        if status != self.view.status:
            await self._set_status(status)
        else:
            self._upsert_search_attributes()
            await self._publish()

    # ================================================================== cancel
    @workflow.update
    async def cancel(self, request: CancelInput) -> OrderCommandResult:
        if not await self._cancel(request):
            raise ApplicationError(
                "the lines shipped before they could be cancelled",
                type="NotCancellable",
                non_retryable=True,
            )
        return OrderCommandResult(status=self.view.status)

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        if self.closed:
            raise ApplicationError(
                f"order is {self.view.status.value}", type="NotCancellable", non_retryable=True
            )
        line_ids = request.line_ids or list(self.state.lines)
        unknown = [lid for lid in line_ids if lid not in self.state.lines]
        if unknown:
            raise ApplicationError(
                f"unknown lines {unknown}", type="UnknownLine", non_retryable=True
            )
        if not self.state.cancellable(line_ids):
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
            return
        await self._cancel(request)

    async def _cancel(self, request: CancelInput) -> list[ReturnLine]:
        """Cancel what has not shipped of these lines; returns the units cancelled."""
        line_ids = self.state.cancellable(request.line_ids or list(self.state.lines))
        before = {lid: self.state.lines[lid].cancelled for lid in line_ids}
        self.cancels_in_flight += 1
        try:
            return await self._cancel_lines(request, line_ids, before)
        finally:
            self.cancels_in_flight -= 1

    async def _cancel_lines(
        self, request: CancelInput, line_ids: list[str], before: dict[str, int]
    ) -> list[ReturnLine]:
        async with self.lock:
            # from here a pick shortfall on these lines cancels units instead of re-routing
            self.state.cancelling.update(line_ids)
            reservations = self.state.cancel_unreleased(line_ids)
            self.state.return_seq += 1
            return_id = f"{self.order.order_id}-C{self.state.return_seq}"
            self._event("cancel_requested", f"lines {', '.join(line_ids)}: {request.reason}")
            for key, lids in self.state.releases_holding(line_ids).items():
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
        # units already at a location are cancelled when the location's workflow confirms
        await workflow.wait_condition(lambda: not self.state.releases_holding(line_ids))
        lines = [
            ReturnLine(line_id=lid, quantity=self.state.lines[lid].cancelled - before[lid])
            for lid in line_ids
            if self.state.lines[lid].cancelled > before[lid]
        ]
        async with self.lock:
            # releases the reservations of units no location had yet, records the return
            await activity_calls.call(
                "cancel_order_lines",
                CancelOrderInput(
                    order_id=self.order.order_id,
                    return_id=return_id,
                    lines=lines,
                    reservation_ids=reservations,
                    reason=request.reason,
                ),
                CancelOrderResult,
            )
        if lines:
            self.view.returns.append(
                ReturnView(
                    return_id=return_id,
                    type="CANCEL",
                    lines=lines,
                    status="DONE",
                    reason=request.reason,
                )
            )
        if self.view.status == OrderStatus.AWAITING_APPROVAL and self.state.all_done:
            for approval in self.approvals.withdraw_open():
                self._event("approval_withdrawn", f"{approval.reason}: order cancelled")
        if self.state.all_done and not any(p.units("delivered") for p in self.state.lines.values()):
            if self.view.status != OrderStatus.CANCELLED:
                await self._set_status(OrderStatus.CANCELLED, request.reason)
        elif self.view.status not in ROUTING_WAITS and self.state.release_seq:
            await self._refresh_fulfillment_status()
        else:
            self.state.refresh_lines()
            await self._publish()
        return lines

    # ================================================================== manual assignment
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
                AssignLocationsInput(order_id=self.order.order_id, lines=lines),
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
        backordered = bool(self.state.release_seq) and bool(self.state.lines_to_route())
        if (
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

    # ================================================================== resume
    @workflow.update
    def resume_order(self, request: ResumeInput) -> OrderCommandResult:
        self._resume(request)
        return OrderCommandResult(status=self.view.status)

    @resume_order.validator
    def _validate_resume(self, request: ResumeInput) -> None:
        waiting_for_stock = self.state.release_seq and self.state.lines_to_route()
        if self.view.status not in ROUTING_WAITS and not waiting_for_stock:
            raise ApplicationError(
                f"order is {self.view.status.value}, nothing to resume",
                type="NotResumable",
                non_retryable=True,
            )

    @workflow.signal(name="resume")
    def resume_signal(self, request: ResumeInput) -> None:
        try:
            self._validate_resume(request)
        except ApplicationError as err:
            self._event("resume_ignored", str(err))
            return
        self._resume(request)

    def _resume(self, request: ResumeInput) -> None:
        self.resume_request = request
        self.route_due = True
        self.stock_waits = 0
        self._event("resumed", request.comment or "")

    # ================================================================== approval
    @workflow.update
    async def decide_approval(self, decision: ApprovalDecisionInput) -> ApprovalUpdateResult:
        await self._decide(decision)
        return ApprovalUpdateResult(approvals=self.view.approvals, status=self.view.status)

    @decide_approval.validator
    def _validate_decision(self, decision: ApprovalDecisionInput) -> None:
        configured = {r.reason for r in self.channel.approval_reasons}
        if not self.view.approvals and decision.reason in configured:
            raise ApplicationError(
                f"the order has not reached approval yet ({self.view.status.value})",
                type="NotPending",
                non_retryable=True,
            )
        self.approvals.check(decision, awaiting=self.view.status == OrderStatus.AWAITING_APPROVAL)

    @workflow.signal
    async def approval_decision(self, decision: ApprovalDecisionInput) -> None:
        try:
            self._validate_decision(decision)
        except ApplicationError as err:
            self._event("approval_decision_ignored", str(err))
            return
        await self._decide(decision)

    async def _decide(self, decision: ApprovalDecisionInput) -> None:
        approval = self.approvals.decide(decision, workflow.now())
        if approval is None:
            return  # the same decision again: already counted
        self._event(
            f"approval_{approval.status.value}",
            f"{approval.reason} by {approval.decided_by}"
            + (f": {approval.comment}" if approval.comment else ""),
        )
        await self._publish(with_approvals=True)

    # ================================================================== view
    @workflow.query(name="state")
    def current_state(self) -> OrderView:
        return self.view

    def _event(self, kind: str, detail: str = "") -> None:
        self.state.event(workflow.now(), kind, detail)

    async def _set_status(self, status: OrderStatus, detail: str = "") -> None:
        previous = self.view.status
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
            )
            await workflow.execute_local_activity(
                "project_order",
                projection,
                start_to_close_timeout=timedelta(seconds=30),
            )
