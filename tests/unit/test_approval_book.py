"""ApprovalBook: rule-based planning, sequential ranks, parallel reasons within a rank,
typed refusals, timeouts and escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from workflows.approval import ApprovalBook, OrderFacts
from workflows.model import (
    ApprovalDecisionInput,
    ApprovalReasonConfig,
    ApprovalRule,
    ApprovalStatus,
    ApprovalView,
    RuleCondition,
)

AT = datetime(2025, 1, 13, 9, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)

FACTS = OrderFacts(
    order_total=Decimal("39.98"),
    payment_method="card",
    customer_id="C-1",
    currency="EUR",
    ship_to_country="DE",
    line_count=1,
    skus=frozenset({"SKU-1"}),
    locations=frozenset({"WH-1"}),
)


def when(field: str, op: str, value: object) -> ApprovalRule:
    return ApprovalRule(conditions=[RuleCondition(field=field, op=op, value=value)])


MATCHES = when("payment_method", "eq", "card")
NO_MATCH = when("order_total", "gt", "1000")


def reasons() -> list[ApprovalReasonConfig]:
    return [
        ApprovalReasonConfig(reason="credit", rank=2, approvers=["cfo"]),
        ApprovalReasonConfig(reason="high_value", rank=1, approvers=["alice", "bob"]),
    ]


def planned(configs: list[ApprovalReasonConfig], facts: OrderFacts = FACTS) -> ApprovalBook:
    book = ApprovalBook([])
    book.plan(configs, facts)
    return book


def make_book() -> ApprovalBook:
    """high_value (rank 1, alice/bob) requested; credit (rank 2, cfo) waiting."""
    book = planned(reasons())
    book.open_next_rank(AT)
    return book


def decision(reason: str, approver: str, verdict: str = "approve") -> ApprovalDecisionInput:
    return ApprovalDecisionInput(reason=reason, decision=verdict, approver=approver)


def refusal(book: ApprovalBook, d: ApprovalDecisionInput, awaiting: bool = True) -> str | None:
    with pytest.raises(ApplicationError) as err:
        book.check(d, awaiting=awaiting)
    assert err.value.non_retryable
    return err.value.type


def statuses(book: ApprovalBook) -> dict[str, ApprovalStatus]:
    return {a.reason: a.status for a in book.approvals}


# --------------------------------------------------------------------------- planning


def test_plan_creates_one_waiting_entry_per_reason_sorted_by_rank():
    book = ApprovalBook([])
    assert book.plan(reasons(), FACTS) is True
    assert [(a.reason, a.rank) for a in book.approvals] == [("high_value", 1), ("credit", 2)]
    assert all(a.status == ApprovalStatus.WAITING for a in book.approvals)
    assert all(a.requested_at is None for a in book.approvals)
    assert book.find("high_value").approvers == ["alice", "bob"]
    assert book.current_rank is None
    assert not book.any_pending
    assert book.declined is None


def test_plan_sorts_same_rank_reasons_by_name():
    book = planned(
        [
            ApprovalReasonConfig(reason="z", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="m", rank=3, approvers=["x"]),
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
        ]
    )
    assert [a.reason for a in book.approvals] == ["a", "z", "m"]


def test_plan_skips_reasons_whose_rule_does_not_match():
    book = ApprovalBook([])
    applies = book.plan(
        [
            ApprovalReasonConfig(reason="fraud", rank=1, approvers=["risk"], rule=MATCHES),
            ApprovalReasonConfig(reason="huge", rank=1, approvers=["cfo"], rule=NO_MATCH),
            ApprovalReasonConfig(reason="always", rank=2, approvers=["ops"]),
        ],
        FACTS,
    )
    assert applies is True
    assert statuses(book) == {
        "fraud": ApprovalStatus.WAITING,
        "huge": ApprovalStatus.SKIPPED,
        "always": ApprovalStatus.WAITING,
    }


def test_plan_without_reasons_needs_no_approval():
    book = ApprovalBook([])
    assert book.plan([], FACTS) is False
    assert book.approvals == []
    assert book.open_next_rank(AT) == []
    assert book.rank_settled


def test_plan_where_no_rule_matches_needs_no_approval():
    book = ApprovalBook([])
    configs = [
        ApprovalReasonConfig(reason="huge", rank=1, approvers=["cfo"], rule=NO_MATCH),
        ApprovalReasonConfig(
            reason="cash", rank=2, approvers=["cfo"], rule=when("payment_method", "eq", "cod")
        ),
    ]
    assert book.plan(configs, FACTS) is False
    assert all(a.status == ApprovalStatus.SKIPPED for a in book.approvals)
    assert book.open_next_rank(AT) == []


def test_plan_mutates_the_view_list_in_place():
    approvals: list[ApprovalView] = []
    ApprovalBook(approvals).plan([ApprovalReasonConfig(reason="r", approvers=["a"])], FACTS)
    assert [a.reason for a in approvals] == ["r"]


def test_plan_keeps_existing_entries_and_refreshes_config():
    """Re-planning an order that already has approvals does not recreate them."""
    approvals: list[ApprovalView] = []
    first = ApprovalBook(approvals)
    first.plan(reasons(), FACTS)
    first.open_next_rank(AT)
    first.decide(decision("high_value", "alice"), AT)

    again = ApprovalBook(approvals)
    assert again.plan(reasons(), FACTS) is True
    assert statuses(again) == {
        "high_value": ApprovalStatus.APPROVED,
        "credit": ApprovalStatus.WAITING,
    }


# --------------------------------------------------------------------------- opening ranks


def test_open_next_rank_opens_only_the_lowest_waiting_rank():
    book = planned(reasons())
    opened = book.open_next_rank(AT)
    assert [a.reason for a in opened] == ["high_value"]
    assert opened[0] is book.find("high_value")
    assert opened[0].status == ApprovalStatus.PENDING
    assert opened[0].requested_at == AT
    credit = book.find("credit")
    assert credit.status == ApprovalStatus.WAITING
    assert credit.requested_at is None
    assert book.current_rank == 1
    assert book.any_pending
    assert not book.rank_settled


def test_open_next_rank_opens_every_reason_of_the_rank_at_once():
    book = planned(
        [
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="b", rank=1, approvers=["y"]),
            ApprovalReasonConfig(reason="c", rank=2, approvers=["z"]),
        ]
    )
    opened = book.open_next_rank(AT)
    assert [a.reason for a in opened] == ["a", "b"]
    assert all(a.status == ApprovalStatus.PENDING and a.requested_at == AT for a in opened)
    assert book.find("c").status == ApprovalStatus.WAITING


def test_open_next_rank_skips_ranks_whose_reasons_were_skipped():
    book = planned(
        [
            ApprovalReasonConfig(reason="huge", rank=1, approvers=["cfo"], rule=NO_MATCH),
            ApprovalReasonConfig(reason="card", rank=2, approvers=["risk"], rule=MATCHES),
        ]
    )
    assert [a.reason for a in book.open_next_rank(AT)] == ["card"]
    assert book.current_rank == 2
    assert book.find("huge").status == ApprovalStatus.SKIPPED


def test_ranks_open_one_after_the_other():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    assert book.rank_settled
    opened = book.open_next_rank(LATER)
    assert [a.reason for a in opened] == ["credit"]
    assert opened[0].requested_at == LATER
    assert book.current_rank == 2
    book.decide(decision("credit", "cfo"), LATER)
    assert book.open_next_rank(LATER) == []


def test_nothing_opens_after_a_decline():
    book = make_book()
    book.decide(decision("high_value", "bob", "decline"), AT)
    assert book.open_next_rank(LATER) == []
    assert book.find("credit").status == ApprovalStatus.WAITING
    assert book.find("credit").requested_at is None


# --------------------------------------------------------------------------- refusals


def test_stranger_is_not_an_approver():
    assert refusal(make_book(), decision("high_value", "mallory")) == "NotApprover"


def test_approver_of_another_reason_is_not_an_approver():
    assert refusal(make_book(), decision("high_value", "cfo")) == "NotApprover"


def test_missing_approver_is_not_an_approver():
    d = ApprovalDecisionInput(reason="high_value", decision="approve")
    assert refusal(make_book(), d) == "NotApprover"


def test_unknown_reason_is_refused():
    assert refusal(make_book(), decision("no_such_reason", "alice")) == "UnknownReason"


def test_rank_two_cannot_decide_before_rank_one_approved():
    book = make_book()
    assert book.find("credit").status == ApprovalStatus.WAITING
    assert refusal(book, decision("credit", "cfo")) == "NotPending"
    book.decide(decision("high_value", "alice"), AT)
    assert refusal(book, decision("credit", "cfo")) == "NotPending"  # still waiting
    book.open_next_rank(AT)
    book.check(decision("credit", "cfo"), awaiting=True)  # now requested


def test_skipped_reason_cannot_be_decided():
    book = planned(
        [
            ApprovalReasonConfig(reason="huge", rank=1, approvers=["cfo"], rule=NO_MATCH),
            ApprovalReasonConfig(reason="card", rank=1, approvers=["risk"], rule=MATCHES),
        ]
    )
    book.open_next_rank(AT)
    assert refusal(book, decision("huge", "cfo")) == "NotPending"


def test_decision_refused_when_order_not_awaiting_approval():
    assert refusal(make_book(), decision("high_value", "alice"), awaiting=False) == "NotPending"


# --------------------------------------------------------------------------- decisions


def test_approve_records_who_when_and_comment():
    book = make_book()
    d = ApprovalDecisionInput(
        reason="high_value", decision="approve", approver="bob", comment="known customer"
    )
    book.check(d, awaiting=True)
    approval = book.decide(d, AT)
    assert approval is book.find("high_value")
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.decided_by, approval.comment, approval.decided_at) == (
        "bob",
        "known customer",
        AT,
    )
    assert book.rank_settled
    assert book.current_rank is None
    assert book.declined is None


def test_same_decision_twice_is_accepted_and_counted_once():
    book = make_book()
    d = decision("high_value", "alice")
    book.check(d, awaiting=True)
    assert book.decide(d, AT) is not None
    book.check(d, awaiting=True)
    assert book.decide(d, LATER) is None
    book.check(d, awaiting=False)  # a retry after the order moved on still passes
    assert book.find("high_value").decided_at == AT


def test_same_decline_twice_is_accepted_and_counted_once():
    book = make_book()
    d = decision("high_value", "bob", "decline")
    book.check(d, awaiting=True)
    assert book.decide(d, AT) is not None
    book.check(d, awaiting=True)
    assert book.decide(d, LATER) is None
    assert book.find("high_value").status == ApprovalStatus.DECLINED


def test_different_second_decision_is_refused():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    assert refusal(book, decision("high_value", "alice", "decline")) == "NotPending"
    assert refusal(book, decision("high_value", "bob")) == "NotPending"
    assert refusal(book, decision("high_value", "bob", "decline")) == "NotPending"
    approval = book.find("high_value")
    assert (approval.status, approval.decided_by) == (ApprovalStatus.APPROVED, "alice")


def test_decline_settles_the_approval_step():
    book = make_book()
    declined = book.decide(decision("high_value", "bob", "decline"), AT)
    assert declined is not None
    assert declined.status == ApprovalStatus.DECLINED
    assert book.declined is declined
    assert book.rank_settled
    assert not book.any_pending


def test_all_ranks_approved_settles_without_decline():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    book.open_next_rank(AT)
    assert not book.rank_settled
    book.decide(decision("credit", "cfo"), AT)
    assert book.rank_settled
    assert book.declined is None
    assert book.current_rank is None
    assert not book.any_pending
    assert set(statuses(book).values()) == {ApprovalStatus.APPROVED}


def test_same_rank_reasons_decide_in_parallel_and_each_must_approve():
    book = planned(
        [
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="b", rank=1, approvers=["y"]),
        ]
    )
    book.open_next_rank(AT)
    book.check(decision("b", "y"), awaiting=True)
    book.decide(decision("b", "y"), AT)
    assert not book.rank_settled
    assert book.current_rank == 1
    book.check(decision("a", "x"), awaiting=True)
    book.decide(decision("a", "x"), AT)
    assert book.rank_settled
    assert book.declined is None


def test_same_rank_any_decline_declines():
    book = planned(
        [
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="b", rank=1, approvers=["y"]),
        ]
    )
    book.open_next_rank(AT)
    book.check(decision("b", "y"), awaiting=True)
    book.decide(decision("b", "y", "decline"), AT)
    assert book.rank_settled
    assert book.any_pending  # "a" is still open until withdrawn
    assert book.declined.reason == "b"


# --------------------------------------------------------------------------- withdrawal


def test_withdraw_open_withdraws_pending_and_waiting_but_leaves_decided_ones():
    book = planned(
        [
            ApprovalReasonConfig(reason="a", rank=1, approvers=["x"]),
            ApprovalReasonConfig(reason="b", rank=1, approvers=["y"]),
            ApprovalReasonConfig(reason="c", rank=2, approvers=["z"]),
            ApprovalReasonConfig(reason="d", rank=2, approvers=["z"], rule=NO_MATCH),
        ]
    )
    book.open_next_rank(AT)
    book.decide(decision("a", "x", "decline"), AT)
    withdrawn = book.withdraw_open()
    assert [a.reason for a in withdrawn] == ["b", "c"]
    assert statuses(book) == {
        "a": ApprovalStatus.DECLINED,
        "b": ApprovalStatus.WITHDRAWN,
        "c": ApprovalStatus.WITHDRAWN,
        "d": ApprovalStatus.SKIPPED,
    }
    assert not book.any_pending
    assert book.withdraw_open() == []


def test_withdraw_open_after_approval_keeps_approved():
    book = make_book()
    book.decide(decision("high_value", "alice"), AT)
    book.open_next_rank(AT)
    assert [a.reason for a in book.withdraw_open()] == ["credit"]
    assert statuses(book) == {
        "high_value": ApprovalStatus.APPROVED,
        "credit": ApprovalStatus.WITHDRAWN,
    }
    assert refusal(book, decision("credit", "cfo")) == "NotPending"


# --------------------------------------------------------------------------- timeouts


def timed(action: str = "decline", **extra: object) -> ApprovalBook:
    book = planned(
        [
            ApprovalReasonConfig(
                reason="slow",
                rank=1,
                approvers=["alice"],
                timeout_seconds=3600,
                timeout_action=action,
                **extra,
            ),
            ApprovalReasonConfig(reason="later", rank=2, approvers=["cfo"]),
        ]
    )
    book.open_next_rank(AT)
    return book


def test_no_deadline_without_timeout():
    book = make_book()
    assert book.next_deadline() is None
    assert book.time_out_due(AT + timedelta(days=365)) == []
    assert book.find("high_value").status == ApprovalStatus.PENDING


def test_no_deadline_before_the_rank_is_requested():
    book = planned([ApprovalReasonConfig(reason="slow", approvers=["alice"], timeout_seconds=60)])
    assert book.next_deadline() is None
    assert book.time_out_due(AT + timedelta(days=1)) == []
    assert book.find("slow").status == ApprovalStatus.WAITING


def test_next_deadline_is_requested_at_plus_timeout():
    book = timed()
    assert book.next_deadline() == AT + timedelta(hours=1)


def test_next_deadline_is_the_earliest_of_the_open_rank():
    book = planned(
        [
            ApprovalReasonConfig(reason="a", approvers=["x"], timeout_seconds=600),
            ApprovalReasonConfig(reason="b", approvers=["y"], timeout_seconds=60),
            ApprovalReasonConfig(reason="c", approvers=["z"]),
        ]
    )
    book.open_next_rank(AT)
    assert book.next_deadline() == AT + timedelta(seconds=60)
    book.decide(decision("b", "y"), AT)
    assert book.next_deadline() == AT + timedelta(seconds=600)


def test_decided_approval_has_no_deadline():
    book = timed()
    book.decide(decision("slow", "alice"), AT)
    assert book.next_deadline() is None
    assert book.time_out_due(AT + timedelta(days=1)) == []


def test_time_out_before_the_deadline_does_nothing():
    book = timed()
    assert book.time_out_due(AT + timedelta(minutes=59)) == []
    slow = book.find("slow")
    assert slow.status == ApprovalStatus.PENDING
    assert slow.decided_by is None
    assert book.declined is None


def test_timeout_declines():
    book = timed("decline")
    now = AT + timedelta(hours=1, seconds=1)
    outcomes = book.time_out_due(now)
    slow = book.find("slow")
    assert outcomes == [(slow, "timed_out")]
    assert slow.status == ApprovalStatus.TIMED_OUT
    assert (slow.decided_by, slow.decided_at) == ("timeout", now)
    assert book.declined is slow
    assert book.rank_settled
    assert book.open_next_rank(now) == []
    assert book.next_deadline() is None
    assert refusal(book, decision("slow", "alice")) == "NotPending"


def test_timeout_exactly_at_the_deadline_is_due():
    book = timed("decline")
    assert [o for _, o in book.time_out_due(AT + timedelta(hours=1))] == ["timed_out"]


def test_timeout_escalates_then_times_out():
    book = timed("escalate", escalate_to=["boss", "alice"])
    first = AT + timedelta(hours=1)
    outcomes = book.time_out_due(first)
    slow = book.find("slow")
    assert outcomes == [(slow, "escalated")]
    assert slow.status == ApprovalStatus.PENDING
    assert slow.escalated is True
    assert slow.approvers == ["alice", "boss"]  # extended, without duplicates
    assert slow.requested_at == first
    assert slow.decided_by is None
    assert book.declined is None
    assert not book.rank_settled
    assert book.next_deadline() == first + timedelta(hours=1)

    assert book.time_out_due(first + timedelta(minutes=30)) == []
    assert slow.status == ApprovalStatus.PENDING

    second = first + timedelta(hours=1)
    assert book.time_out_due(second) == [(slow, "timed_out")]
    assert slow.status == ApprovalStatus.TIMED_OUT
    assert (slow.decided_by, slow.decided_at) == ("timeout", second)
    assert book.declined is slow
    assert slow.approvers == ["alice", "boss"]  # not extended twice


def test_escalated_approver_may_decide():
    book = timed("escalate", escalate_to=["boss"])
    assert refusal(book, decision("slow", "boss")) == "NotApprover"
    book.time_out_due(AT + timedelta(hours=2))
    d = decision("slow", "boss")
    book.check(d, awaiting=True)
    approval = book.decide(d, AT + timedelta(hours=2, minutes=1))
    assert approval is not None
    assert (approval.status, approval.decided_by) == (ApprovalStatus.APPROVED, "boss")
    assert book.rank_settled
    assert book.next_deadline() is None
    assert [a.reason for a in book.open_next_rank(AT + timedelta(hours=3))] == ["later"]


def test_original_approver_may_still_decide_after_escalation():
    book = timed("escalate", escalate_to=["boss"])
    book.time_out_due(AT + timedelta(hours=1))
    book.check(decision("slow", "alice", "decline"), awaiting=True)
    book.decide(decision("slow", "alice", "decline"), AT + timedelta(hours=1, minutes=1))
    assert book.declined is book.find("slow")


# --------------------------------------------------------------------------- reroute, webhooks


def test_reroute_requested_only_when_an_approved_reason_asks_for_it():
    configs = [
        ApprovalReasonConfig(reason="stock", rank=1, approvers=["x"], reroute_after_approval=True),
        ApprovalReasonConfig(reason="credit", rank=1, approvers=["y"]),
    ]
    book = planned(configs)
    assert not book.reroute_requested  # waiting
    book.open_next_rank(AT)
    assert not book.reroute_requested  # pending
    book.decide(decision("credit", "y"), AT)
    assert not book.reroute_requested  # approved, but does not ask for it
    book.decide(decision("stock", "x"), AT)
    assert book.reroute_requested


def test_declined_reason_does_not_request_reroute():
    book = planned(
        [ApprovalReasonConfig(reason="stock", approvers=["x"], reroute_after_approval=True)]
    )
    book.open_next_rank(AT)
    book.decide(decision("stock", "x", "decline"), AT)
    assert not book.reroute_requested


def test_webhooks_map_reasons_with_a_webhook_url():
    book = planned(
        [
            ApprovalReasonConfig(
                reason="ext", rank=1, approvers=["sys"], webhook_url="https://approve.example/a"
            ),
            ApprovalReasonConfig(reason="local", rank=1, approvers=["bob"]),
            ApprovalReasonConfig(
                reason="ext2", rank=2, approvers=["sys"], webhook_url="https://approve.example/b"
            ),
        ]
    )
    opened = book.open_next_rank(AT)
    assert book.webhooks(opened) == {"ext": "https://approve.example/a"}
    assert book.webhooks(book.approvals) == {
        "ext": "https://approve.example/a",
        "ext2": "https://approve.example/b",
    }
    assert book.webhooks([book.find("local")]) == {}
    assert book.webhooks([]) == {}
