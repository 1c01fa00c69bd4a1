"""Shared state and bookkeeping of the order workflow: what it remembers, its view, status
changes with their search attributes, and the projection into the store.

The workflow class is assembled from one class per responsibility (routing, approval,
cancelation; see order.py); Temporal registers the handlers each of them defines.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls, patches, search
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

TERMINAL = (
    OrderStatus.CANCELLED,
    OrderStatus.DELIVERED,
    OrderStatus.PARTIALLY_RETURNED,
    OrderStatus.RETURNED,
    OrderStatus.COMPLETED,
)
# statuses nothing may leave (DELIVERED still moves on to COMPLETED)
FINAL = (OrderStatus.CANCELLED, OrderStatus.COMPLETED)
# fulfillment statuses a refused work order turns into ON_HOLD
HOLDABLE = (OrderStatus.IN_FULFILLMENT, OrderStatus.PARTIALLY_SHIPPED)
# the most lines one message may name (an order has at most 500 lines)
MAX_LINES = 500
# statuses before fulfillment in which routing may still be waiting for the operator
ROUTING_WAITS = (OrderStatus.ON_HOLD, OrderStatus.NOT_ANNOUNCED, OrderStatus.CHECK_ANNOUNCED)
# a stage whose activity keeps failing for technical reasons starts a new round of
# attempts after this wait, doubling per round up to STAGE_ROUND_MAX
STAGE_ROUND = timedelta(seconds=30)
STAGE_ROUND_MAX = timedelta(minutes=10)
# the longest text the OmsHoldReason search attribute carries
HOLD_REASON_LENGTH = 250
# the most attempts of one round, whatever a channel says
MAX_ALERT_ATTEMPTS = 100

T = TypeVar("T")


def failure_text(err: ActivityError) -> str:
    """What went wrong, worded for the operator: the partner's or the store's answer."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        text = cause.message
        if cause.type and not cause.type.startswith("Partner"):
            text = f"{cause.type}: {text}"
    elif isinstance(cause, ActivityTimeout):
        text = f"timed out ({cause.type.name if cause.type else 'timeout'})"
    else:
        text = str(cause or err)
    return text.strip()[:500]


def failure_text_of(reason: str) -> str:
    """The error part of a shown stage problem (to log an event only when it changes)."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


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
    stage_holds: bool
    round_trips: bool
    # stage -> its failure shown in the hold reasons; rounds of attempts per stage
    stage_problems: dict[str, str]
    stage_rounds: dict[str, int]
    # a stage's business failure holds the order until `resume`
    stage_held: bool
    resumes: int
    publish_lock: asyncio.Lock
    # with round_trips: a projection and search attributes due, written once per
    # workflow task by one publisher task (see _publish)
    publish_due: bool
    publish_approvals: bool
    search_due: bool
    publisher: asyncio.Task[None] | None
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
        if self.round_trips:
            # once, when this workflow task's work is done (see _publish)
            self.search_due = True
            self._start_publisher()
            return
        self._upsert_now()

    def _upsert_now(self) -> None:
        updates: list[SearchAttributeUpdate[Any]] = [
            search.ORDER_STATUS.value_set(self.view.status.value),
            search.LOCATIONS.value_set(self.state.locations()),
            search.AWAITING_APPROVAL.value_set(
                self.view.status == OrderStatus.AWAITING_APPROVAL
                and any(a.status == ApprovalStatus.PENDING for a in self.view.approvals)
            ),
        ]
        if self.stage_holds:
            reasons = "; ".join(self.view.hold_reasons)
            if len(reasons) > HOLD_REASON_LENGTH:
                reasons = reasons[: HOLD_REASON_LENGTH - 3] + "..."
            updates.append(
                search.HOLD_REASON.value_set(reasons)
                if reasons and self.view.status not in TERMINAL
                else search.HOLD_REASON.value_unset()
            )
        if self.round_trips:
            # only what changed: most steps change no search attribute at all
            current = workflow.info().typed_search_attributes
            updates = [u for u in updates if current.get(u.key) != u.value]
            if not updates:
                return
        workflow.upsert_search_attributes(updates)

    # ------------------------------------------------------------- failing stages
    def _alert_attempts(self) -> int:
        return max(1, min(self.channel.stage_attempts_before_alert, MAX_ALERT_ATTEMPTS))

    async def _attempt(
        self, stage: str, name: str, arg: Any, result_type: type[T]
    ) -> T | ActivityError:
        """One round of a stage's activity: its result, or the failure that ended the
        round (a business failure, or the last of the channel's number of attempts)."""
        try:
            result = await activity_calls.call(
                name, arg, result_type, attempts=self._alert_attempts()
            )
        except ActivityError as err:
            return err
        await self._stage_recovered(stage)
        return result

    async def _stage_call(self, stage: str, name: str, arg: Any, result_type: type[T]) -> T:
        """A stage's activity run where the order's lock is held and must stay held (the
        stage's writes belong together): a failing round is shown, then another round
        starts after a wait. Old histories call the activity as they did."""
        if not self.stage_holds:
            return await activity_calls.call(name, arg, result_type)
        while True:
            outcome = await self._attempt(stage, name, arg, result_type)
            if not isinstance(outcome, ActivityError):
                return outcome
            await self._show_stage_problem(stage, outcome, business=False)
            # the lock's holder finishes what it started, even for an order that ended
            await self._next_round(stage, wake_at_end=False)

    async def _stage_failed(self, stage: str, err: ActivityError) -> bool:
        """Called outside the order's lock after a failed round: True to run the stage
        again, False when the order stopped meanwhile (a cancel). A business failure
        (non-retryable: a partner's refusal, invalid configuration) holds the order until
        `resume`; a technical one shows its last error and retries after a wait (or at
        once on `resume`)."""
        business = err.retry_state == RetryState.NON_RETRYABLE_FAILURE
        reason = await self._show_stage_problem(stage, err, business=business)
        if business:
            resumes = self.resumes
            previous = self.view.status
            self.stage_held = True
            try:
                await self._set_status(OrderStatus.ON_HOLD, reason)
                await workflow.wait_condition(lambda: self.resumes != resumes or self._ended())
            finally:
                self.stage_held = False
            if self._ended():
                await self._drop_stage_problem(stage)
                return False
            if previous in HOLDABLE:
                # releases may have moved on meanwhile: their lines say the status
                self._event("stage_resumed", f"{stage} runs again")
                await self._refresh_fulfillment_status()
            else:
                await self._set_status(previous, f"resumed: {stage} runs again")
            return True
        await self._next_round(stage, wake_at_end=True)
        if self._ended():
            await self._drop_stage_problem(stage)
            return False
        return True

    async def _next_round(self, stage: str, *, wake_at_end: bool) -> None:
        """Wait before the stage's next round: the round's backoff, a `resume` (run it
        now) or, with `wake_at_end`, the order's end, whichever comes first."""
        resumes = self.resumes
        try:
            await workflow.wait_condition(
                lambda: self.resumes != resumes or (wake_at_end and self._ended()),
                timeout=self._round_wait(stage),
            )
        except TimeoutError:
            pass

    async def _drop_stage_problem(self, stage: str) -> None:
        """The order ended (cancelled) while the stage was failing: nothing is wrong any
        more, so its reason leaves the view and the search attribute."""
        reason = self.stage_problems.pop(stage, None)
        self.stage_rounds.pop(stage, None)
        if reason is not None:
            self.view.hold_reasons = [r for r in self.view.hold_reasons if r != reason]
            self._upsert_search_attributes()
            await self._publish()

    def _round_wait(self, stage: str) -> timedelta:
        rounds = self.stage_rounds.get(stage, 1)
        return min(STAGE_ROUND * 2 ** min(rounds - 1, 10), STAGE_ROUND_MAX)

    async def _show_stage_problem(self, stage: str, err: ActivityError, *, business: bool) -> str:
        """The stage and its error in the hold reasons, the event log, the current details
        and the OmsHoldReason search attribute."""
        self.stage_rounds[stage] = self.stage_rounds.get(stage, 0) + 1
        text = failure_text(err)
        if business:
            reason = f"{stage}: {text}; fix it, then resume the order"
        else:
            attempts = self.stage_rounds[stage] * self._alert_attempts()
            reason = f"{stage} failing after {attempts} attempts, retrying: {text}"
        earlier = self.stage_problems.get(stage)
        self.stage_problems[stage] = reason
        self.view.hold_reasons = [r for r in self.view.hold_reasons if r != earlier] + [reason]
        if earlier is None or business or failure_text_of(earlier) != text:
            self._event("stage_failed" if business else "stage_failing", reason)
        workflow.set_current_details(f"**{self.view.status.value}** {reason}")
        workflow.logger.warning("order stage %s: %s", stage, reason)
        if not business:  # a hold publishes with its status change
            self._upsert_search_attributes()
            await self._publish()
        return reason

    async def _stage_recovered(self, stage: str) -> None:
        reason = self.stage_problems.pop(stage, None)
        self.stage_rounds.pop(stage, None)
        if reason is None:
            return
        self.view.hold_reasons = [r for r in self.view.hold_reasons if r != reason]
        self._event("stage_recovered", f"{stage} succeeded")
        workflow.set_current_details(f"**{self.view.status.value}** {stage} recovered")
        self._upsert_search_attributes()
        await self._publish()

    async def _publish(self, *, with_approvals: bool = False) -> None:
        """Write status, lines and new events to the store (a local activity: no extra
        round trip through the server for bookkeeping).

        With round_trips the write is only marked due: one publisher task writes once
        every coroutine of the workflow task has run, so the statuses and events of one
        step make one write (and one search-attribute upsert), not one each. Events not
        written yet stay in the workflow's state: a worker that dies loses none."""
        if not self.round_trips:
            await self._write_projection(with_approvals=with_approvals)
            return
        self.publish_due = True
        self.publish_approvals = self.publish_approvals or with_approvals
        self._start_publisher()

    def _start_publisher(self) -> None:
        if self.publisher is not None and self.publisher.done():
            self.publisher.result()  # a failed write fails the workflow task, visibly
            self.publisher = None
        if self.publisher is None:
            self.publisher = asyncio.create_task(self._publish_due())

    async def _publish_due(self) -> None:
        while self.publish_due or self.search_due:
            # conditions are looked at once every ready coroutine has run: this write
            # comes after everything this workflow task does
            await workflow.wait_condition(lambda: True)
            if self.search_due:
                self.search_due = False
                self._upsert_now()
            if self.publish_due:
                with_approvals, self.publish_approvals = self.publish_approvals, False
                self.publish_due = False
                await self._write_projection(with_approvals=with_approvals)

    async def _flushed(self) -> None:
        """Wait until what is due is written (before a continue-as-new or the end)."""
        if not self.round_trips:
            return
        await workflow.wait_condition(
            lambda: (
                not (self.publish_due or self.search_due)
                and (self.publisher is None or self.publisher.done())
            )
        )
        if self.publisher is not None:
            self.publisher.result()

    async def _write_projection(self, *, with_approvals: bool) -> None:
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
        elif (
            status in TERMINAL
            and self.cancels_in_flight
            and status != self.view.status
            and self._cancel_decides_end()
        ):
            # so does it when the other lines were delivered or came back: the order
            # would end (and complete) before the cancel had recorded its return
            status = self.view.status
        elif status in HOLDABLE and (
            (self.partners_apart and self.state.rejected_deliveries)
            or (self.stage_holds and self.stage_held)
        ):
            # a partner refused a work order, or a stage failed: resume after the fix
            status = OrderStatus.ON_HOLD
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
            await self._stage_call(
                "cancel",
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
            if self.view.status in FINAL and self._cancel_decides_end():
                # the order ended meanwhile: nothing after this would project the return
                await self._publish()

    def _cancel_decides_end(self) -> bool:
        """A cancel in flight decides how the order ends (patch oms-7001-cancel-in-flight;
        asked only where the paths differ, so an order that never meets such a case
        carries no marker)."""
        return self.guarded and workflow.patched(patches.CANCEL_IN_FLIGHT)

    def _apply_decisions(self, decisions: list[RoutingDecision]) -> None:
        for decision in decisions:
            self.state.apply_routing(decision)
            self._event(
                "line_routed" if decision.location_id else "line_not_routed",
                f"line {decision.line_id}: {decision.reason}",
            )
        self.state.refresh_lines()
        self._upsert_search_attributes()
