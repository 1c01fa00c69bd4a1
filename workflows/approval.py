"""Approval bookkeeping of one order: deterministic, no I/O.

Reasons of the same rank are decided in parallel; ranks in ascending order, a rank
being open only once every lower rank approved. Any decline settles the whole step.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from workflows.model import (
    ApprovalDecisionInput,
    ApprovalReasonConfig,
    ApprovalStatus,
    ApprovalView,
)


class ApprovalBook:
    def __init__(self, approvals: list[ApprovalView]) -> None:
        # the order view's own list, mutated in place so the view always shows it
        self.approvals = approvals

    def open(self, reasons: list[ApprovalReasonConfig]) -> bool:
        """Create one pending request per reason; False when no approval is needed."""
        if not self.approvals:
            self.approvals.extend(
                ApprovalView(reason=r.reason, rank=r.rank, approvers=list(r.approvers))
                for r in sorted(reasons, key=lambda r: (r.rank, r.reason))
            )
        return bool(self.approvals)

    @property
    def current_rank(self) -> int | None:
        pending = [a.rank for a in self.approvals if a.status == ApprovalStatus.PENDING]
        return min(pending) if pending else None

    @property
    def declined(self) -> ApprovalView | None:
        return next((a for a in self.approvals if a.status == ApprovalStatus.DECLINED), None)

    @property
    def settled(self) -> bool:
        return self.declined is not None or all(
            a.status == ApprovalStatus.APPROVED for a in self.approvals
        )

    def withdraw_pending(self) -> None:
        for approval in self.approvals:
            if approval.status == ApprovalStatus.PENDING:
                approval.status = ApprovalStatus.WITHDRAWN

    def find(self, reason: str) -> ApprovalView | None:
        return next((a for a in self.approvals if a.reason == reason), None)

    def check(self, decision: ApprovalDecisionInput, *, awaiting: bool) -> None:
        """Raise a typed ApplicationError when the decision cannot count."""
        approval = self.find(decision.reason)
        if approval is None:
            raise ApplicationError(
                f"no approval reason {decision.reason!r} on this order",
                type="UnknownReason",
                non_retryable=True,
            )
        if decision.approver not in approval.approvers:
            raise ApplicationError(
                f"{decision.approver or 'caller'} is not an approver of {decision.reason}",
                type="NotApprover",
                non_retryable=True,
            )
        if self._repeat(approval, decision):
            return
        if not awaiting:
            raise ApplicationError(
                "the order is not awaiting approval", type="NotPending", non_retryable=True
            )
        if approval.status != ApprovalStatus.PENDING:
            raise ApplicationError(
                f"{decision.reason} is {approval.status.value} already",
                type="NotPending",
                non_retryable=True,
            )
        if approval.rank != self.current_rank:
            raise ApplicationError(
                f"{decision.reason} (rank {approval.rank}) waits for rank "
                f"{self.current_rank} to approve first",
                type="NotPending",
                non_retryable=True,
            )

    def decide(self, decision: ApprovalDecisionInput, at: datetime) -> ApprovalView | None:
        """Apply a checked decision; None when it repeats one already counted."""
        approval = self.find(decision.reason)
        assert approval is not None
        if self._repeat(approval, decision):
            return None
        approval.status = (
            ApprovalStatus.APPROVED if decision.decision == "approve" else ApprovalStatus.DECLINED
        )
        approval.decided_by = decision.approver
        approval.comment = decision.comment
        approval.decided_at = at
        return approval

    @staticmethod
    def _repeat(approval: ApprovalView, decision: ApprovalDecisionInput) -> bool:
        wanted = "approved" if decision.decision == "approve" else "declined"
        return approval.status.value == wanted and approval.decided_by == decision.approver
