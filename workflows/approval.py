"""Approval bookkeeping of one order: deterministic, no I/O.

Reasons whose rule matches the order are grouped by rank. Ranks are requested in
ascending order, the next only after every reason of the prior rank approved
(sequential); all reasons of one rank are requested at once and each must approve
(parallel). Any decline, or a timeout configured to decline, settles the whole step.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from temporalio.exceptions import ApplicationError

from workflows.model import (
    ApprovalDecisionInput,
    ApprovalReasonConfig,
    ApprovalRule,
    ApprovalStatus,
    ApprovalView,
    OrderInput,
    RuleCondition,
)

OPEN = (ApprovalStatus.WAITING, ApprovalStatus.PENDING)
# the longest approval timeout a workflow starts a timer for (a year)
MAX_TIMEOUT_SECONDS = 365 * 86400.0
COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


@dataclass(frozen=True)
class OrderFacts:
    """What approval rules may look at."""

    order_total: Decimal
    payment_method: str
    customer_id: str
    currency: str
    ship_to_country: str
    line_count: int
    skus: frozenset[str]
    locations: frozenset[str]

    @classmethod
    def of(cls, order: OrderInput, locations: list[str]) -> OrderFacts:
        return cls(
            order_total=order.total,
            payment_method=order.payment.method,
            customer_id=order.customer.id,
            currency=order.payment.currency,
            ship_to_country=order.ship_to.country,
            line_count=len(order.lines),
            skus=frozenset(line.sku for line in order.lines),
            locations=frozenset(locations),
        )


def _number(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def condition_holds(cond: RuleCondition, facts: OrderFacts) -> bool:
    wanted = [str(v) for v in cond.value] if isinstance(cond.value, list) else [str(cond.value)]
    if cond.field in ("sku", "location_id"):
        members = facts.skus if cond.field == "sku" else facts.locations
        hit = any(m in wanted for m in members)
        if cond.op in ("eq", "in"):
            return hit
        if cond.op in ("ne", "not_in"):
            return not hit
        return False
    actual = getattr(facts, cond.field)
    if cond.field in ("order_total", "line_count"):
        left = _number(actual)
        if cond.op in ("in", "not_in"):
            found = any(_number(w) == left for w in wanted)
            return found if cond.op == "in" else not found
        right = _number(cond.value)
        if left is None or right is None or not (left.is_finite() and right.is_finite()):
            return False
        return COMPARE[cond.op](left, right)
    text = str(actual)
    if cond.op in ("eq", "in"):
        return text in wanted
    if cond.op in ("ne", "not_in"):
        return text not in wanted
    return False


def rule_applies(rule: ApprovalRule | None, facts: OrderFacts) -> bool:
    if rule is None:
        return True
    results = (condition_holds(c, facts) for c in rule.conditions)
    return all(results) if rule.match == "all" else any(results)


class ApprovalBook:
    def __init__(self, approvals: list[ApprovalView]) -> None:
        # the order view's own list, mutated in place so the view always shows it
        self.approvals = approvals
        self.config: dict[str, ApprovalReasonConfig] = {}

    # ------------------------------------------------------------------ planning
    def plan(self, reasons: list[ApprovalReasonConfig], facts: OrderFacts) -> bool:
        """One entry per configured reason; False when none applies to this order."""
        self.config = {r.reason: r for r in reasons}
        if not self.approvals:
            self.approvals.extend(
                ApprovalView(
                    reason=r.reason,
                    rank=r.rank,
                    approvers=list(r.approvers),
                    status=ApprovalStatus.WAITING
                    if rule_applies(r.rule, facts)
                    else ApprovalStatus.SKIPPED,
                )
                for r in sorted(reasons, key=lambda r: (r.rank, r.reason))
            )
        return any(a.status != ApprovalStatus.SKIPPED for a in self.approvals)

    def open_next_rank(self, now: datetime) -> list[ApprovalView]:
        """Request every reason of the lowest rank still waiting."""
        waiting = [a.rank for a in self.approvals if a.status == ApprovalStatus.WAITING]
        if not waiting or self.declined is not None or self.any_pending:
            return []
        rank = min(waiting)
        opened = [
            a for a in self.approvals if a.rank == rank and a.status == ApprovalStatus.WAITING
        ]
        for approval in opened:
            approval.status = ApprovalStatus.PENDING
            approval.requested_at = now
        return opened

    # ------------------------------------------------------------------ state
    @property
    def current_rank(self) -> int | None:
        pending = [a.rank for a in self.approvals if a.status == ApprovalStatus.PENDING]
        return min(pending) if pending else None

    @property
    def declined(self) -> ApprovalView | None:
        return next(
            (
                a
                for a in self.approvals
                if a.status in (ApprovalStatus.DECLINED, ApprovalStatus.TIMED_OUT)
            ),
            None,
        )

    @property
    def rank_settled(self) -> bool:
        return self.declined is not None or self.current_rank is None

    @property
    def any_pending(self) -> bool:
        return self.current_rank is not None

    @property
    def reroute_requested(self) -> bool:
        return any(
            a.status == ApprovalStatus.APPROVED and self._config(a).reroute_after_approval
            for a in self.approvals
        )

    def withdraw_open(self) -> list[ApprovalView]:
        withdrawn = [a for a in self.approvals if a.status in OPEN]
        for approval in withdrawn:
            approval.status = ApprovalStatus.WITHDRAWN
        return withdrawn

    def find(self, reason: str) -> ApprovalView | None:
        return next((a for a in self.approvals if a.reason == reason), None)

    def webhooks(self, approvals: list[ApprovalView]) -> dict[str, str]:
        return {a.reason: url for a in approvals if (url := self._config(a).webhook_url)}

    def _config(self, approval: ApprovalView) -> ApprovalReasonConfig:
        return self.config.get(approval.reason) or ApprovalReasonConfig(
            reason=approval.reason, rank=approval.rank, approvers=approval.approvers or ["-"]
        )

    # ------------------------------------------------------------------ timeouts
    def _deadline(self, approval: ApprovalView) -> datetime | None:
        timeout = self._config(approval).timeout_seconds
        if approval.status != ApprovalStatus.PENDING or timeout is None:
            return None
        assert approval.requested_at is not None
        # whatever a stored configuration says, a timer the workflow can start
        seconds = timeout if math.isfinite(timeout) else MAX_TIMEOUT_SECONDS
        return approval.requested_at + timedelta(seconds=min(seconds, MAX_TIMEOUT_SECONDS))

    def next_deadline(self) -> datetime | None:
        deadlines = [d for a in self.approvals if (d := self._deadline(a)) is not None]
        return min(deadlines) if deadlines else None

    def time_out_due(self, now: datetime) -> list[tuple[ApprovalView, str]]:
        """Apply every expired timeout: (approval, "timed_out" | "escalated")."""
        outcomes: list[tuple[ApprovalView, str]] = []
        for approval in self.approvals:
            deadline = self._deadline(approval)
            if deadline is None or deadline > now:
                continue
            config = self._config(approval)
            if config.timeout_action == "escalate" and not approval.escalated:
                approval.approvers = list(dict.fromkeys(approval.approvers + config.escalate_to))
                approval.escalated = True
                approval.requested_at = now  # the escalated approvers get a full timeout
                outcomes.append((approval, "escalated"))
            else:
                approval.status = ApprovalStatus.TIMED_OUT
                approval.decided_by = "timeout"
                approval.decided_at = now
                outcomes.append((approval, "timed_out"))
        return outcomes

    # ------------------------------------------------------------------ decisions
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
        if approval.status == ApprovalStatus.WAITING:
            raise ApplicationError(
                f"{decision.reason} (rank {approval.rank}) waits for rank "
                f"{self.current_rank} to approve first",
                type="NotPending",
                non_retryable=True,
            )
        if approval.status != ApprovalStatus.PENDING:
            raise ApplicationError(
                f"{decision.reason} is {approval.status.value}",
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
        approval.decided_by = decision.recorded_as()
        approval.comment = decision.comment
        approval.decided_at = at
        return approval

    @staticmethod
    def _repeat(approval: ApprovalView, decision: ApprovalDecisionInput) -> bool:
        wanted = "approved" if decision.decision == "approve" else "declined"
        return approval.status.value == wanted and approval.decided_by == decision.recorded_as()
