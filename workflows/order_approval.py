"""Approval part of the order workflow: ranks in sequence, reasons of a rank in parallel,
timeouts and escalation, notices to third-party systems, decisions by update or signal.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.approval import OrderFacts
    from workflows.model import (
        ApprovalDecisionInput,
        ApprovalNotice,
        ApprovalStatus,
        ApprovalUpdateResult,
        ApprovalView,
        CancelInput,
        NoticeKind,
        OrderStatus,
        ReleaseReservationsInput,
        ReleaseReservationsResult,
    )

from workflows.order_base import OrderBase

NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)


class OrderApproval(OrderBase):
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
        # guarded runs request the first rank before the status is written, so nobody
        # reads AWAITING_APPROVAL with nothing pending (the commands are the same)
        first = self.approvals.open_next_rank(workflow.now()) if self.guarded else None
        await self._set_status(OrderStatus.AWAITING_APPROVAL)
        # ranks one after the other; all reasons of a rank at once
        while opened := (
            first if first is not None else self.approvals.open_next_rank(workflow.now())
        ):
            first = None
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
            if self._ended() or self.approvals.declined is not None:
                break
        if self.closed or self._halt():
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
            if self.closed or self._halt():
                return
        await self._set_status(OrderStatus.APPROVED)

    async def _wait_for_rank(self) -> None:
        """Wait until every reason of the open rank is decided, applying timeouts."""
        while not (self.approvals.rank_settled or self._ended()):
            deadline = self.approvals.next_deadline()
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(
                    lambda: self.approvals.rank_settled or self._ended(), timeout=timeout
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
            if self._halt():
                return
            reservations = self.state.unschedule()
            await self._stage_call(
                "approval",
                "release_reservations",
                ReleaseReservationsInput(
                    order_id=self.order.order_id, reservation_ids=reservations
                ),
                ReleaseReservationsResult,
            )
        await self._set_status(OrderStatus.ROUTING, "re-routing after approval")
        await self._route_until_assigned()

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
            if self.guarded:
                await self._publish()  # the audit trail (read from the store) shows it
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
