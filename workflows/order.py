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
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls
    from workflows.approval import ApprovalBook
    from workflows.fulfillment import FulfillmentWorkflow, fulfillment_workflow_id
    from workflows.model import (
        DocumentsInput,
        DocumentsResult,
        FulfillmentInput,
        FulfillmentLine,
        FulfillmentProgress,
        OrderInput,
        OrderResponseInput,
        OrderResponseResult,
        OrderStatus,
        OrderView,
        ReleasePlan,
        ResponseLine,
        ResumeInput,
        SalesChannelConfig,
        SubmitWorkOrdersInput,
        SubmitWorkOrdersResult,
        ValidateOrderInput,
        ValidateOrderResult,
    )
    from workflows.order_state import (
        OrderState,
        release_key,
        shipment_key,
        work_order_id,
    )

from workflows.order_approval import OrderApproval
from workflows.order_cancel import OrderCancellation
from workflows.order_routing import OrderRouting


def order_workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow(OrderApproval, OrderCancellation, OrderRouting):
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        now = workflow.now()
        self.order = order
        self.state = OrderState.for_order(order, now)
        self.approvals = ApprovalBook(self.state.view.approvals)
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
