"""OrderWorkflow: one durable workflow per order, id `order-{order_id}`.

validation -> routing -> approval -> temporary response -> documents -> submission ->
one FulfillmentWorkflow child per location and release, re-routing backordered units
until every line is delivered or cancelled; then the return window, then COMPLETED.

Stage work runs under `self.lock` so a cancel or decision arriving mid-stage waits for
the stage's activity to finish instead of interleaving with it (safe message handlers).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls, patches
    from workflows.approval import ApprovalBook
    from workflows.fulfillment import FulfillmentWorkflow, fulfillment_workflow_id
    from workflows.model import (
        CancelInput,
        DocumentsInput,
        DocumentsResult,
        FulfillmentInput,
        FulfillmentLine,
        FulfillmentProgress,
        OrderResponseInput,
        OrderResponseResult,
        OrderStatus,
        ReleasePlan,
        ResponseLine,
        ResumeInput,
        ReturnLine,
        SalesChannelConfig,
        SendWorkOrderInput,
        SendWorkOrderResult,
        SubmitWorkOrdersInput,
        SubmitWorkOrdersResult,
        TrackingUpdate,
        ValidateOrderInput,
        ValidateOrderResult,
        handover_key,
    )
    from workflows.order_state import (
        OrderCarry,
        OrderOutcome,
        OrderState,
        OrderWorkflowInput,
        release_key,
        shipment_key,
        work_order_id,
    )

from workflows.order_approval import OrderApproval
from workflows.order_base import FINAL, MAX_LINES
from workflows.order_cancel import OrderCancellation
from workflows.order_returns import OrderReturns
from workflows.order_routing import OrderRouting

# the longest a backorder retry timer may run, whatever a channel says
MAX_BACKORDER_RETRY = 30 * 86400.0
# a work order whose partner keeps failing is tried again this often (each round is the
# activity's own retries with backoff), its last error shown in the order meanwhile
DELIVERY_RETRY = timedelta(seconds=60)


def units_per_line(items: list[tuple[str, Any]]) -> dict[str, int]:
    units: dict[str, int] = {}
    for line_id, alloc in items:
        units[line_id] = units.get(line_id, 0) + alloc.quantity
    return units


def order_workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow(OrderApproval, OrderCancellation, OrderRouting, OrderReturns):
    @workflow.init
    def __init__(self, input: OrderWorkflowInput) -> None:
        now = workflow.now()
        carried = input.carried
        order = input.order()
        self.order = order
        self.state = carried.state if carried else OrderState.for_order(order, now)
        self.approvals = ApprovalBook(self.state.view.approvals)
        self.channel = (
            carried.channel if carried else SalesChannelConfig(channel_id=order.sales_channel)
        )
        if carried is not None:
            self.approvals.config = {r.reason: r for r in self.channel.approval_reasons}
        # decided once per run, before any handler runs: histories recorded before a
        # change keep the old path (workflows/patches.py)
        # (each marker costs the history two events: the marker and a TemporalChangeVersion
        # upsert, so a new order asks for the newest baseline only)
        self.releases_at_submission = workflow.patched(patches.RELEASES_AT_SUBMISSION)
        if self.releases_at_submission or workflow.patched(patches.BASELINE_13):
            # one marker for every change up to issue 13
            self.guarded = self.abandon_children = self.partners_apart = True
            self.stage_holds = self.returns_enabled = self.round_trips = True
        else:
            self.guarded = workflow.patched(patches.TERMINAL_GUARD)
            self.abandon_children = workflow.patched(patches.ABANDONED_CHILDREN)
            self.partners_apart = workflow.patched(patches.PARTNERS_OUTSIDE_LOCK)
            self.stage_holds = workflow.patched(patches.STAGE_FAILURES)
            self.returns_enabled = workflow.patched(patches.RETURNS)
            self.round_trips = workflow.patched(patches.ROUND_TRIPS)
        self.publish_due = False
        self.publish_approvals = False
        self.search_due = False
        self.publisher = None
        self.return_window_end = None
        self.returns_opening = []
        self.stage_problems: dict[str, str] = {}
        self.stage_rounds: dict[str, int] = {}
        self.stage_held = False
        # one task per work order on its way to a partner; those inside their activity
        self.deliveries: dict[str, asyncio.Task[None]] = {}
        self.delivery_busy: set[str] = set()
        self.resumes = 0
        self.lock = asyncio.Lock()
        self.publish_lock = asyncio.Lock()
        self.resume_request: ResumeInput | None = None
        self.route_due = carried.route_due if carried else True
        self.stock_waits = carried.stock_waits if carried else 0
        self.cancels_in_flight = 0
        self.notices: list[asyncio.Task[None]] = []
        self.children: list[workflow.ChildWorkflowHandle[Any, Any]] = []
        if carried is None:
            self.state.event(now, "order_created", f"{len(order.lines)} lines, total {order.total}")
        else:
            self.state.event(now, "continued_as_new", f"run {carried.runs + 1} of this order")
        self.runs = carried.runs + 1 if carried else 1

    @workflow.run
    async def run(self, input: OrderWorkflowInput) -> OrderOutcome:
        resumed = input.carried is not None
        if not self.guarded:  # histories from before the guard
            await self._lifecycle(resumed=resumed)
            if self.notices:
                await asyncio.gather(*self.notices)
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self._outcome()
        # "Request Cancellation" in the Temporal UI or CLI is an order cancel: the order's
        # own flow is shielded from it, so a stage's activity finishes and is accounted
        # for, and the cancel then takes the lock like any other cancel
        whole = asyncio.create_task(self._run_to_the_end(resumed=resumed))
        while True:
            try:
                return await asyncio.shield(whole)
            except asyncio.CancelledError:
                if whole.done():
                    # it ended in the same activation: its own outcome (or continue-as-new)
                    return whole.result()
                self.notices.append(asyncio.create_task(self._cancel_from_temporal()))

    async def _run_to_the_end(self, *, resumed: bool) -> OrderOutcome:
        await self._lifecycle(resumed=resumed)

        def idle() -> bool:
            return (
                all(task.done() for task in self.notices)
                and all(task.done() for task in self.deliveries.values())
                and workflow.all_handlers_finished()
            )

        while True:
            # notices, deliveries, a Temporal cancel and handlers finish before the order
            # closes
            await workflow.wait_condition(idle)
            for task in self.notices:
                task.result()  # a failure in one of them fails the task, visibly
            await self._flushed()  # the last status and events are in the store
            # something that started during the write is waited for too (histories from
            # before closed here)
            if idle() or not workflow.patched(patches.IDLE_AFTER_FLUSH):
                return self._outcome()

    def _outcome(self) -> OrderOutcome:
        return OrderOutcome(order_id=self.view.order_id, status=self.view.status, runs=self.runs)

    async def _lifecycle(self, *, resumed: bool) -> None:
        if not resumed:
            for stage in (self._validate, self._route_initial, self._approve, self._respond):
                if self.closed or self._halt():
                    break
                await stage()
            if self.guarded:
                # a cancel in flight decides how the order ends
                await workflow.wait_condition(lambda: self.cancels_in_flight == 0)
        if not self.closed:
            self._start_deliveries()  # work orders a run before this one had not sent
            await self._fulfil()
        if self.guarded and not self.closed and self.state.all_done:
            await workflow.wait_condition(lambda: self.cancels_in_flight == 0)
            if not self.closed:
                await self._refresh_fulfillment_status()  # every line settled: say how
        await self._complete_after_return_window()

    async def _complete_after_return_window(self) -> None:
        if self.returns_enabled and self.view.status in (
            OrderStatus.DELIVERED,
            OrderStatus.RETURNED,
        ):
            await self._take_returns()
        elif self.view.status == OrderStatus.DELIVERED:
            workflow.set_current_details("delivered; return window open")
            await workflow.sleep(timedelta(days=self.channel.return_window_days))
            await self._set_status(OrderStatus.COMPLETED, "return window over")

    async def _cancel_from_temporal(self) -> None:
        self._event("workflow_cancel_requested", "cancellation requested through Temporal")
        if self.view.status in FINAL or not self.state.cancellable(list(self.state.lines)):
            self._event("cancel_ignored", f"order is {self.view.status.value}: nothing to cancel")
            await self._publish()
            return
        await self._cancel(CancelInput(reason="cancellation requested through Temporal"))

    async def _validate(self) -> None:
        while True:
            if self.view.status != OrderStatus.VALIDATING or not self.stage_holds:
                await self._set_status(OrderStatus.VALIDATING)
            if self.stage_holds:
                async with self.lock:
                    if self._halt():
                        return
                    outcome = await self._attempt(
                        "validation",
                        "validate_order",
                        ValidateOrderInput(order=self.order),
                        ValidateOrderResult,
                    )
                if isinstance(outcome, ActivityError):
                    if not await self._stage_failed("validation", outcome):
                        return
                    continue
                result = outcome
            else:
                async with self.lock:
                    if self._halt():
                        return
                    result = await activity_calls.call(
                        "validate_order", ValidateOrderInput(order=self.order), ValidateOrderResult
                    )
            if self._halt():
                return
            if result.channel is not None:
                self.channel = result.channel
            if not result.hold_reasons:
                self.view.hold_reasons = []
                await self._set_status(OrderStatus.VALIDATED)
                return
            self.view.hold_reasons = result.hold_reasons
            if self.guarded:
                self.resume_request = None  # a resume from here on counts
            await self._set_status(OrderStatus.ON_HOLD, "; ".join(result.hold_reasons))
            if not await self._wait_for_resume() or self._halt():
                return
            if self.resume_request and self.resume_request.payment:
                self.order = self.order.model_copy(update={"payment": self.resume_request.payment})

    async def _respond(self) -> None:
        lines = [
            ResponseLine(line_id=lid, location_id=loc)
            for lid, p in self.state.lines.items()
            if (loc := p.current_location) is not None
        ]

        def response() -> OrderResponseInput:
            return OrderResponseInput(
                order_id=self.order.order_id,
                sales_channel=self.order.sales_channel,
                lines=lines,
                as_of=workflow.now(),
            )

        if self.stage_holds:
            # the web shop's callback is a partner: called outside the order's lock, so a
            # cancel never waits for it
            while True:
                if self._halt():
                    return
                outcome = await self._attempt(
                    "response", "send_order_response", response(), OrderResponseResult
                )
                if not isinstance(outcome, ActivityError):
                    result = outcome
                    break
                if not await self._stage_failed("response", outcome):
                    return
        else:
            async with self.lock:
                if self._halt():
                    return
                result = await activity_calls.call(
                    "send_order_response", response(), OrderResponseResult
                )
        if self._halt():
            return
        for line in self.view.lines:
            line.planned_ship_date = result.planned_ship_dates.get(line.line_id)
        dates = ", ".join(f"{k}: {v}" for k, v in sorted(result.planned_ship_dates.items()))
        await self._set_status(OrderStatus.RESPONDED, f"planned ship dates {dates}")

    async def _fulfil(self) -> None:
        while not self.state.all_done:
            if self.abandon_children and self._continue_as_new_due():
                await self._continue_as_new()
            if self.state.scheduled_by_location():
                async with self.lock:
                    await self._release_scheduled()
                self._start_deliveries()
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
            timeout = self._backorder_retry() if to_route else None
            try:
                await workflow.wait_condition(
                    lambda: (
                        self.state.all_done
                        or bool(self.state.scheduled_by_location())
                        or (self.route_due and bool(self.state.lines_to_route()))
                        or (self.abandon_children and self._continue_as_new_due())
                    ),
                    timeout=timeout,
                )
            except TimeoutError:
                self.route_due = True
        if not self.abandon_children:
            # children have reported their last step; let them close before the order does
            for child in self.children:
                await child

    def _backorder_retry(self) -> timedelta:
        """The channel's retry interval, kept within 1 s .. 30 days whatever was stored."""
        seconds = self.channel.backorder_retry_seconds
        if not self.guarded:
            return timedelta(seconds=seconds)
        if not math.isfinite(seconds):
            seconds = MAX_BACKORDER_RETRY
        return timedelta(seconds=min(max(seconds, 1.0), MAX_BACKORDER_RETRY))

    def _continue_as_new_due(self) -> bool:
        """The server suggests a fresh history, and nothing is in flight that a new run
        could not pick up from the carried state."""
        return (
            workflow.info().is_continue_as_new_suggested()
            and not self.lock.locked()
            and self.cancels_in_flight == 0
            and all(task.done() for task in self.notices)
            and not self.delivery_busy
        )

    # ------------------------------------------------------------------ partners
    def _start_deliveries(self) -> None:
        for plan in self.state.undelivered:
            if plan.release_key not in self.deliveries:
                self.deliveries[plan.release_key] = asyncio.create_task(self._deliver(plan))

    async def _deliver(self, plan: ReleasePlan) -> None:
        """Send one work order to its location's webhook, outside the order's lock: a
        technical failure is shown and retried every DELIVERY_RETRY; a refusal puts the
        order ON_HOLD until `resume`; a cancel of the release stops it."""
        key = plan.release_key
        try:
            while self.state.release_waiting_for_pick(key):
                self.delivery_busy.add(key)
                try:
                    result: SendWorkOrderResult = await activity_calls.call(
                        "send_work_order",
                        SendWorkOrderInput(order_id=self.order.order_id, release=plan),
                        SendWorkOrderResult,
                    )
                except ActivityError as err:
                    self.delivery_busy.discard(key)
                    await self._delivery_failed(plan, err)
                    continue
                self.delivery_busy.discard(key)
                if result.sent:
                    self.state.sent_work_orders.append(plan.work_order_id)
                    self._event("work_order_sent", f"{plan.work_order_id} to {plan.location_id}")
                    await self._publish()
                break
        finally:
            self.delivery_busy.discard(key)
            self.state.undelivered = [p for p in self.state.undelivered if p.release_key != key]
            if self._clear_delivery_problem(key) and not self.closed:
                await self._refresh_fulfillment_status()

    async def _delivery_failed(self, plan: ReleasePlan, err: ActivityError) -> None:
        key = plan.release_key
        cause = err.cause
        rejected = isinstance(cause, ApplicationError) and cause.type == "PartnerRejected"
        if self.stage_holds:
            # any failure no retry changes (a refusal, a forbidden target) waits for resume
            rejected = err.retry_state == RetryState.NON_RETRYABLE_FAILURE
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        reason = (
            f"submission: {plan.work_order_id} to {plan.location_id} "
            f"{'refused' if rejected else 'failing'}: {message}"
        )
        self._clear_delivery_problem(key)
        self.state.delivery_problems[key] = reason
        self.view.hold_reasons.append(reason)
        if rejected:
            self.state.rejected_deliveries.append(key)
        self._event("work_order_refused" if rejected else "work_order_failing", reason)
        workflow.set_current_details(reason)
        await self._refresh_fulfillment_status()
        resumes = self.resumes
        try:
            await workflow.wait_condition(
                lambda: self.resumes != resumes or not self.state.release_waiting_for_pick(key),
                timeout=None if rejected else DELIVERY_RETRY,
            )
        except TimeoutError:
            pass

    def _clear_delivery_problem(self, release_key: str) -> bool:
        reason = self.state.delivery_problems.pop(release_key, None)
        if release_key in self.state.rejected_deliveries:
            self.state.rejected_deliveries.remove(release_key)
        if reason is None:
            return False
        self.view.hold_reasons = [r for r in self.view.hold_reasons if r != reason]
        return True

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._continue_as_new_due():
            return  # a handler started work meanwhile; try again later
        await self._publish()
        await self._flushed()
        if not (workflow.all_handlers_finished() and self._continue_as_new_due()):
            return  # something started during the projection: carry on, try again later
        carried = OrderCarry.of(
            self.state,
            self.channel,
            stock_waits=self.stock_waits,
            route_due=self.route_due,
            runs=self.runs,
        )
        workflow.continue_as_new(
            OrderWorkflowInput.model_validate({**self.order.model_dump(), "carried": carried})
        )

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
            if self.guarded:
                await self._record_policy_cancel(ids, "backordered units found no stock")
            await self._refresh_fulfillment_status()
            return
        self._event(
            "backorder_waiting", ", ".join(f"line {p.line_id}: {p.open} x {p.sku}" for p in waiting)
        )
        await self._publish()

    async def _record_policy_cancel(self, line_ids: list[str], reason: str) -> None:
        """Units the order's own policy cancelled get their CANCEL return like any other."""
        taken = self.state.take_cancelled_for_return(line_ids)
        if not taken:
            return
        self.state.return_seq += 1
        return_id = f"{self.order.order_id}-C{self.state.return_seq}"
        lines = [ReturnLine(line_id=lid, quantity=q) for lid, q in taken.items()]
        await self._record_cancel_return(return_id, lines, [], reason)

    async def _release_scheduled(self) -> None:
        if self._halt():
            return
        first = self.view.status in (OrderStatus.RESPONDED, OrderStatus.APPROVED)
        plans: list[ReleasePlan] = []
        allocations = {}
        for items in self.state.scheduled_by_location().values():
            seq = self.state.start_release([alloc for _, alloc in items])
            oid = self.order.order_id
            plan = ReleasePlan(
                seq=seq,
                location_id=items[0][1].location_id,
                transfer_to=items[0][1].transfer_to,
                line_ids=[lid for lid, _ in items],
                release_key=release_key(oid, seq),
                shipment_key=shipment_key(oid, seq),
                work_order_id=work_order_id(oid, seq),
                quantities=units_per_line(items),
            )
            plans.append(plan)
            allocations[seq] = items
        docs: DocumentsResult = await self._stage_call(
            "documents",
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
        skus = {line.line_id: line.sku for line in self.order.lines}

        def child_input(plan: ReleasePlan) -> FulfillmentInput:
            return FulfillmentInput(
                order_id=self.order.order_id,
                location_id=plan.location_id,
                release_key=plan.release_key,
                shipment_key=plan.shipment_key,
                work_order_id=plan.work_order_id,
                transfer_to=plan.transfer_to,
                lines=[
                    FulfillmentLine(
                        line_id=lid,
                        sku=skus[lid],
                        quantity=alloc.quantity,
                        reservation_id=alloc.reservation_id,
                    )
                    for lid, alloc in allocations[plan.seq]
                ],
                order_took_release=self.releases_at_submission,
            )

        def start(plan: ReleasePlan) -> Awaitable[workflow.ChildWorkflowHandle[Any, Any]]:
            return workflow.start_child_workflow(
                FulfillmentWorkflow.run,
                child_input(plan),
                id=fulfillment_workflow_id(self.order.order_id, plan.seq),
                static_summary=f"{plan.location_id}: release {plan.release_key}"
                + (f", transfer to {plan.transfer_to}" if plan.transfer_to else ""),
                # a release outlives a continue-as-new of its order; it reports to the
                # order by workflow id, so it finds the order's newest run
                parent_close_policy=ParentClosePolicy.ABANDON
                if self.abandon_children
                else ParentClosePolicy.TERMINATE,
            )

        starting: asyncio.Future[list[Any]] | None = None
        if self.releases_at_submission:
            # every release's workflow starts while submit_work_orders writes the work
            # orders and releases: it waits for the pick, which comes once the location
            # sees its release (after the write), so a report never waits for a start
            starting = asyncio.gather(*(start(plan) for plan in plans))
        submitted: SubmitWorkOrdersResult = await self._stage_call(
            "submission",
            "submit_work_orders",
            SubmitWorkOrdersInput(
                order_id=self.order.order_id,
                releases=plans,
                send_webhooks=not self.partners_apart,
                release_at=workflow.now() if self.releases_at_submission else None,
            ),
            SubmitWorkOrdersResult,
        )
        if self.partners_apart:
            # sent by _deliver, outside the lock, once the lock is given back
            self.state.undelivered.extend(p for p in plans if p.work_order_id in submitted.to_send)
        self.view.work_orders.extend(submitted.work_orders)
        detail = ", ".join(f"{w.work_order_id} to {w.location_id}" for w in submitted.work_orders)
        if first:
            await self._set_status(OrderStatus.SUBMITTED, detail)
        else:
            self._event("work_orders_submitted", detail)
        if starting is not None:
            # submit_work_orders wrote the releases: the order records them (and the status
            # they give) in this workflow task (before: each release wrote itself and
            # signalled the order, a workflow task of the order's own), before it can take
            # any later step's report; then it waits for their workflows' start
            for plan in plans:
                self._take_progress(
                    FulfillmentProgress(
                        release_key=plan.release_key,
                        shipment_key=plan.shipment_key,
                        location_id=plan.location_id,
                        kind="released",
                        quantities=dict(plan.quantities),
                    )
                )
            await self._refresh_fulfillment_status()
            await starting
            return
        for plan in plans:
            handle = await start(plan)
            if not self.abandon_children:
                self.children.append(handle)  # awaited before the order closes
        await self._refresh_fulfillment_status()

    @workflow.signal
    async def fulfillment_progress(self, progress: FulfillmentProgress) -> None:
        if self.guarded and (
            len(progress.quantities) > MAX_LINES or len(progress.backordered) > MAX_LINES
        ):
            workflow.logger.warning("fulfillment report with too many lines ignored")
            return
        if not self._take_progress(progress):
            return
        if progress.kind == "returned_to_sender":
            await self._return_to_sender(progress)
        if progress.kind == "ready_for_pickup":
            self._tell_ready_for_pickup(progress)
        await self._refresh_fulfillment_status()

    def _take_progress(self, progress: FulfillmentProgress) -> bool:
        """Fold a release's step into the order's lines and events; False when it changes
        nothing (a repeated, late or made-up report: keyed per release and step)."""
        if not self.state.apply_progress(progress, workflow.now(), once=self.guarded):
            workflow.logger.info(
                "fulfillment report %s %s ignored: already applied or not applicable",
                progress.release_key,
                progress.kind,
            )
            return False
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
        return True

    def _tell_ready_for_pickup(self, progress: FulfillmentProgress) -> None:
        """Click and collect: the channel hears (a signed status update, in the background
        like tracking) that the transferred units wait at the pickup store."""
        store = next(
            (
                a.transfer_to
                for line in self.state.lines.values()
                for a in line.allocations
                if a.release_key == progress.release_key and a.transfer_to
            ),
            progress.location_id,
        )
        units = ", ".join(f"line {k}: {v}" for k, v in sorted(progress.quantities.items()))
        update = TrackingUpdate(
            shipment_key=handover_key(progress.shipment_key),
            event_id="ready_for_pickup",
            status="READY_FOR_PICKUP",
            at=workflow.now(),
            detail=f"ready for pickup at {store}: {units}",
            location_id=store,
        )
        self.notices.append(asyncio.create_task(self._send_tracking(update)))
