"""ApprovalBook: sequential ranks, parallel reasons within a rank, typed refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError

from workflows.approval import ApprovalBook
from workflows.model import ApprovalDecisionInput, ApprovalReasonConfig, ApprovalStatus

AT = datetime(2025, 1, 13, 9, 0, tzinfo=UTC)


def make_book() -> ApprovalBook:
    book = ApprovalBook([])
    book.open(
        [
            ApprovalReasonConfig(reason="credit", rank=2, approvers=["cfo"]),
            ApprovalReasonConfig(reason="high_value", rank=1, approvers=["alice", "bob"]),
        ]
    )
    return book


def decision(reason: str, approver: str, verdict: str = "approve") -> ApprovalDecisionInput:
    return ApprovalDecisionInput(reason=reason, decision=verdict, approver=approver)


def refusal(book: ApprovalBook, d: ApprovalDecisionInput, awaiting: bool = True) -> str | None:
    with pytest.raises(ApplicationError) as err:
        book.check(d, awaiting=awaiting)
    assert err.value.non_retryable
    return err.value.type


def test_open_creates_pending_requests_sorted_by_rank():
    book = make_book()
    assert [(a.reason, a.rank) for a in book.approvals] == [("high_value", 1), ("credit", 2)]
    assert all(a.status == ApprovalStatus.PENDING for a in book.approvals)
    assert book.current_rank == 1
    assert not book.settled
    assert book.declined is None


def test_open_without_reasons_needs_no_approval():
    book = ApprovalBook([])
    assert book.open([]) is False
    assert book.settled


def test_open_mutates_the_view_list_in_place():
    approvals: list = []
    ApprovalBook(approvals).open([ApprovalReasonConfig(reason="r", approvers=["a"])])
    assert [a.reason for a in approvals] == ["r"]


def test_stranger_is_not_an_approver():
    assert refusal(make_book(), decision("high_value", "mallory")) == "NotApprover"


def test_approver_of_another_reason_is_not_an_approver():
    assert refusal(make_book(), decision("high_value", "cfo")) == "NotApprover"


def test_unknown_reason_is_refused():
    assert refusal(make_book(), decision("no_such_reason", "alice")) == "UnknownReason"


def test_rank_two_cannot_decide_before_rank_one_approved():
    book = make_book()
    assert refusal(book, decision("credit", "cfo")) == "NotPending"
    book.decide(decision("high_value", "alice"), AT)
    book.check(decision("credit", "cfo"), awaiting=True)  # now open


def test_decision_refused_when_order_not_awaiting_approval():
    assert refusal(make_book(), decision("high_value", "alice"), awaiting=False) == "NotPending"


def test_approve_records_who_when_and_comment():
    book = make_book()
    d = ApprovalDecisionInput(
        reason="high_value", decision="approve", approver="bob", comment="known customer"
    )
    book.check(d, awaiting=True)
    approval = book.decide(d, AT)
    assert approval is not None
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.decided_by, approval.comment, approval.decided_at) == (
        "bob",
        "known customer",
        AT,
    )
    assert book.current_rank == 2


def test_same_decision_twice_is_accepted_and_counted_once():
    book = make_book()
    d = decision("high_value", "alice")
    book.check(d, awaiting=True)
    assert book.decide(d, AT) is not None
    book.check(d, awaiting=True)
    assert book.decide(d, AT) is None
    book.check(d, awaiting=False)  # a retry after the order moved on still passes
    assert book.find("high_value").decided_at == AT


def test_different_second_decision_is_refused():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    assert refusal(book, decision("high_value", "alice", "decline")) == "NotPending"
    assert refusal(book, decision("high_value", "bob")) == "NotPending"
    assert book.find("high_value").status == ApprovalStatus.APPROVED


def test_decline_settles_the_approval_step():
    book = make_book()
    declined = book.decide(decision("high_value", "bob", "decline"), AT)
    assert book.declined is declined
    assert book.settled


def test_all_ranks_approved_settles_without_decline():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    assert not book.settled
    book.decide(decision("credit", "cfo"), AT)
    assert book.settled
    assert book.declined is None
    assert book.current_rank is None


def test_same_rank_reasons_decide_in_parallel_and_any_decline_declines():
    book = ApprovalBook([])
    book.open(
        [
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="b", rank=1, approvers=["y"]),
        ]
    )
    book.check(decision("b", "y"), awaiting=True)
    book.decide(decision("b", "y", "decline"), AT)
    assert book.settled
    assert book.declined.reason == "b"


def test_withdraw_pending_leaves_decided_ones():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    book.withdraw_pending()
    assert [a.status for a in book.approvals] == [
        ApprovalStatus.APPROVED,
        ApprovalStatus.WITHDRAWN,
    ]
