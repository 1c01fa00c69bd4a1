"""Order invariants under races and hostile messages (issue 7; DESIGN section 3).

Each test reproduces one way users saw an order break an invariant, and asserts what they
should have seen instead:

1. a cancel accepted while the order is VALIDATING, ROUTING, NOT_ANNOUNCED or
   CHECK_ANNOUNCED ends the order CANCELLED (view, list, search attribute) with its stock
   back and exactly one CANCEL return; the order does not run on to approval and response;
2. a cancel of an ON_HOLD order closes it promptly (no VALIDATING/ON_HOLD loop);
3. two cancels accepted together record the cancelled units once;
4. a `fulfillment_progress` report that is repeated, names an unknown release or line, or
   carries more units than were released, changes nothing;
5. a Temporal-level cancellation (the UI's "Request Cancellation") cancels the order;
6. a sales channel whose stored configuration is bad does not fail workflow tasks;
7. the same kind of defect, found on the way: duplicate line ids in a cancel, channel
   configuration accepted on write that cannot run, a decision, a resume, an assignment or
   a re-routing racing a cancel, cancels by the order's own policy, Temporal cancellation
   while an activity runs or while an API cancel is under way, made-up `cancelled`
   reports, malformed signals, a negative safety buffer stored by hand.

To hold an order inside a stage deterministically, a test runs its own worker whose
`validate_order` or `route_order` waits behind a `Gate` (tests/integration/gates.py).
To make messages concurrent, they are delivered while no worker runs, or while a gated
activity holds the workflow. No fixed sleeps: every wait polls a condition under a deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus

from store.tables import Return
from tests.integration.conftest import WAIT_SECONDS, Stack, order_body, unique_sku
from tests.integration.gates import (
    E,
    Gate,
    count,
    eventually,
    gated_worker,
    history,
    idle,
    private_stack,
    quiescent,
    settle,
    signal_names,
    task_failures,
    wait_closed,
    wait_history,
)
from workflows import search
from workflows.model import (
    ApprovalDecisionInput,
    CancelInput,
    FulfillmentProgress,
    Payment,
    ResumeInput,
)
from workflows.order import order_workflow_id

# a cancelled order's history stays well below this; the ON_HOLD loop passed it in seconds
HISTORY_LIMIT = 200
HELD = ("ACTIVE", "PICKED")  # reservation statuses that still hold stock
SHIPPED = ("SHIPPED", "DELIVERED")
# statuses an order must not enter once a cancel of all of it was accepted
AFTER_CANCEL_ALLOWED = {"status_validated", "status_cancelled"}
CLOSED = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
}


# ---------------------------------------------------------------------------- helpers
def returns(view: dict[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        (r["type"], [(line["line_id"], line["quantity"]) for line in r["lines"]])
        for r in view["returns"]
    ]


async def stored_returns(stack: Stack, order_id: str) -> list[tuple[str, list[tuple[str, int]]]]:
    async with stack.store.db.sessions() as session:
        rows = await session.execute(
            select(Return).where(Return.order_id == order_id).order_by(Return.return_id)
        )
        return [
            (r.type, [(line["line_id"], line["quantity"]) for line in r.lines])
            for r in rows.scalars()
        ]


async def stock(stack: Stack, *skus: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(location, sku) -> (on_hand, reserved) in the store."""
    return {
        (r.location_id, r.sku): (r.on_hand, r.reserved)
        for r in await stack.store.inventory.stock(skus)
    }


async def held(stack: Stack, order_id: str) -> list[tuple[str, str, int, str]]:
    return [
        (r.line_id, r.location_id, r.quantity, r.status)
        for r in await stack.store.inventory.reservations_for_order(order_id)
        if r.status in HELD
    ]


async def listed_status(stack: Stack, order_id: str, channel: str) -> str | None:
    status, body = await stack.call(
        "GET", f"/v1/orders?sales_channel={channel}&limit=500", key="ops"
    )
    assert status == 200, body
    return next((o["status"] for o in body["orders"] if o["order_id"] == order_id), None)


async def search_status(stack: Stack, order_id: str) -> str | None:
    described = await stack.client.get_workflow_handle(order_workflow_id(order_id)).describe()
    return described.typed_search_attributes.get(search.ORDER_STATUS)


def statuses_after_cancel(view: dict[str, Any]) -> list[str]:
    types = [e["type"] for e in view["events"]]
    marks = [i for i, t in enumerate(types) if t in ("cancel_requested", "status_cancelled")]
    assert marks, types
    return [t for t in types[marks[0] :] if t.startswith("status_")]


async def cancel(stack: Stack, order_id: str, reason: str = "changed my mind") -> tuple[int, Any]:
    return await stack.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": reason}
    )


async def assert_cancelled(
    stack: Stack,
    order_id: str,
    channel: str,
    *,
    units: int,
    stock_before: dict[tuple[str, str], tuple[int, int]],
    allowed: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Everything a user reads says CANCELLED; the stock is back exactly once; exactly one
    CANCEL return holds the ordered units; nothing stays reserved. After the cancel the
    order entered no status but CANCELLED (and VALIDATED or `allowed` ones)."""
    view = await stack.order(order_id)
    seen = {
        "view": view["status"],
        "list": await listed_status(stack, order_id, channel),
        "OmsOrderStatus": await search_status(stack, order_id),
    }
    assert seen == dict.fromkeys(seen, "CANCELLED"), (
        seen,
        [e["type"] for e in view["events"]],
        {"reserved": await held(stack, order_id)},
    )
    after = statuses_after_cancel(view)
    assert set(after) <= AFTER_CANCEL_ALLOWED | allowed and after[-1:] == ["status_cancelled"], (
        after
    )
    assert returns(view) == [("CANCEL", [("1", units)])], view["returns"]
    assert await stored_returns(stack, order_id) == [("CANCEL", [("1", units)])]
    assert await held(stack, order_id) == []
    skus = {sku for _, sku in stock_before}
    assert await stock(stack, *skus) == stock_before
    line = view["lines"][0]
    assert (line["status"], line["cancelled_quantity"]) == ("CANCELLED", units), line
    return view


async def answer_of(answer: asyncio.Task[tuple[int, Any]]) -> tuple[int, Any]:
    """The HTTP answer of a command sent as a task, within the suite's deadline."""
    try:
        return await asyncio.wait_for(asyncio.shield(answer), WAIT_SECONDS)
    except TimeoutError:
        answer.cancel()
    pytest.fail(f"no answer to the command in {WAIT_SECONDS}s")


async def arrived(gate: Gate) -> bool | None:
    return True if gate.arrived.is_set() else None


async def wait_accepted(stack: Stack, order_id: str, updates: int, answers: list[Any]) -> None:
    """The workflow has accepted `updates` updates (or an answer came back first)."""

    async def probe() -> bool | None:
        if any(a.done() for a in answers):
            return True
        events = await history(stack, order_workflow_id(order_id))
        accepted = count(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        return True if accepted >= updates else None

    await eventually(probe, f"{updates} update(s) accepted by order-{order_id}")


async def hold_cancel_activity(
    stack: Stack, order_id: str, gate: Gate, answer: asyncio.Task[Any]
) -> None:
    """With the cancel's store activity (`cancel_order_lines`) held at its gate, let the
    order do whatever else it would do meanwhile (until only gated activities are in
    flight), then open the gate. A slow store is all it takes in production."""
    workflow_id = order_workflow_id(order_id)

    async def probe() -> bool | None:
        if answer.done():
            return True
        if not gate.arrived.is_set():
            return None
        return True if quiescent(await history(stack, workflow_id)) else None

    try:
        await eventually(probe, f"{workflow_id}: cancel activity held, nothing else to do")
    finally:
        gate.open()


def reacted_to_cancellation(events: list[Any]) -> bool:
    """The workflow has handled a Temporal cancellation request in a workflow task (or
    closed)."""
    kinds_seen = [e.event_type for e in events]
    if E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in kinds_seen:
        return False
    after = kinds_seen[kinds_seen.index(E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED) :]
    handled = (E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, E.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    return any(k in after for k in handled) or kinds_seen[-1] in CLOSED


async def settle_order(stack: Stack, order_id: str) -> list[str]:
    """The order and every release it started are idle together; returns their ids."""
    workflow_id = order_workflow_id(order_id)
    known: list[str] = []
    while True:
        ids = [workflow_id, *known]
        await settle(stack, *ids)
        started = [
            e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in await history(stack, workflow_id)
            if e.event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        if started == known:
            return ids
        known = started


# ---------------------------------------------------------------------------- 1
@pytest.mark.parametrize(
    ("stage", "activity_name"), [("VALIDATING", "validate_order"), ("ROUTING", "route_order")]
)
async def test_cancel_accepted_mid_stage_cancels_the_order(
    stack: Stack, stage: str, activity_name: str
) -> None:
    """The customer cancels while the stage's activity runs (held by a gate; the cancel
    waits for it). The cancel is answered 200; the order must end CANCELLED and must not
    run on through approval to RESPONDED (it did, while the cancel's own store write ran)."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        stage_gate, cancel_gate = Gate(), Gate()
        async with gated_worker(
            own, {activity_name: stage_gate, "cancel_order_lines": cancel_gate}
        ):
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                await own.wait_status(order_id, stage)
                await eventually(lambda: arrived(stage_gate), f"{activity_name} started")
                answer = asyncio.create_task(cancel(own, order_id))
                await wait_accepted(own, order_id, 1, [answer])
            finally:
                stage_gate.open()
            await hold_cancel_activity(own, order_id, cancel_gate, answer)
            status, body = await answer_of(answer)
            assert status == 200, body
            await wait_closed(own, order_workflow_id(order_id))
            view = await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
        # it never went on to the temporary response, documents or a release
        assert (view["releases"], view["documents"], view["work_orders"]) == ([], [], [])
        assert [line["planned_ship_date"] for line in view["lines"]] == [None]


@pytest.mark.parametrize("wait", ["NOT_ANNOUNCED", "CHECK_ANNOUNCED"])
async def test_cancel_while_waiting_for_an_operator_stays_cancelled(
    stack: Stack, wait: str
) -> None:
    """NOT_ANNOUNCED: no location stocks the SKU. CHECK_ANNOUNCED: only London has it,
    beyond the channel's 500 km. The customer cancels (answered 200): the order must end
    CANCELLED, not RESPONDED. Then operations, not knowing, try to resume or assign: both
    409, and the order stays CANCELLED with nothing reserved."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        if wait == "CHECK_ANNOUNCED":
            channel = await own.make_channel("inv", max_distance_km=500)
            await own.set_stock([("WH-LONDON", sku, 5)])
            location = "WH-LONDON"
        else:
            channel = await own.make_channel("inv")
            location = "WH-BERLIN"
        cancel_gate = Gate()
        async with gated_worker(own, {"cancel_order_lines": cancel_gate}):
            order_id = await own.create_order(
                order_body(channel=channel, sku=sku, quantity=2), key="ops"
            )
            await own.wait_status(order_id, wait)
            await settle(own, order_workflow_id(order_id))
            answer = asyncio.create_task(cancel(own, order_id))
            await hold_cancel_activity(own, order_id, cancel_gate, answer)
            status, body = await answer_of(answer)
            assert status == 200, body
            if wait == "NOT_ANNOUNCED":
                # stock arrives: a resume or an assignment would now find it
                await own.set_stock([("WH-BERLIN", sku, 5)])
            before = await stock(own, sku)

            status, body = await own.call(
                "POST", f"/v1/orders/{order_id}/resume", key="ops", json={"comment": "again"}
            )
            assert status == 409, body
            status, body = await own.call(
                "POST",
                f"/v1/orders/{order_id}/assignments",
                key="ops",
                json={
                    "assignments": [{"line_id": "1", "location_id": location}],
                    "comment": "by hand",
                },
            )
            assert status == 409, body
            await wait_closed(own, order_workflow_id(order_id))
            view = await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
        assert (view["releases"], view["documents"]) == ([], [])
        assert "assigned_manually" not in [e["type"] for e in view["events"]]


# ---------------------------------------------------------------------------- 2
async def test_cancel_on_hold_closes_the_order_without_a_loop(stack: Stack) -> None:
    """The payment does not cover the total: ON_HOLD. The customer cancels (200): the
    order is CANCELLED promptly and its history stays small (it used to loop
    VALIDATING -> ON_HOLD, thousands of events a minute)."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        body = order_body(channel=channel, sku=sku, quantity=2)
        body["payment"]["amount"] = "1.00"
        cancel_gate = Gate()
        async with gated_worker(own, {"cancel_order_lines": cancel_gate}):
            order_id = await own.create_order(body, key="ops")
            view = await own.wait_status(order_id, "ON_HOLD")
            assert view["hold_reasons"], view
            workflow_id = order_workflow_id(order_id)
            await settle(own, workflow_id)
            answer = asyncio.create_task(cancel(own, order_id))
            await hold_cancel_activity(own, order_id, cancel_gate, answer)
            status, answered = await answer_of(answer)
            assert status == 200, answered

            async def closed() -> int | None:
                events = await history(own, workflow_id)
                if len(events) > HISTORY_LIMIT:
                    view = await own.order(order_id)
                    pytest.fail(
                        f"{workflow_id}: {len(events)} history events after the cancel, "
                        f"status {view['status']}, last events "
                        f"{[e['type'] for e in view['events']][-6:]}"
                    )
                return len(events) if events[-1].event_type in CLOSED else None

            size = await eventually(closed, f"{workflow_id} closed after the cancel")
            assert size < HISTORY_LIMIT
            await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
            status, answered = await own.call(
                "POST", f"/v1/orders/{order_id}/resume", key="ops", json={}
            )
            assert status == 409, answered


# ---------------------------------------------------------------------------- 3
async def test_two_cancel_signals_at_once_return_the_units_once(stack: Stack) -> None:
    """Two `cancel_order` signals (the UI, the CLI, a retrying client) reach an order whose
    units are released to Berlin while no worker runs: one workflow task handles both. The
    units are cancelled once: one CANCEL return of 2, stock back once."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 2)])
        before = await stock(own, sku)
        async with own.worker():
            order_id = await own.create_order(
                order_body(channel=channel, sku=sku, quantity=2), key="ops"
            )
            key = await own.current_shipment(order_id, "WH-BERLIN")
            await settle_order(own, order_id)
        order = own.client.get_workflow_handle(order_workflow_id(order_id))
        await order.signal("cancel_order", CancelInput(reason="first click"))
        await order.signal("cancel_order", CancelInput(reason="second click"))
        async with own.worker():
            await wait_closed(own, order.id)
            await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
            record = await own.store.fulfillment.shipment(key)
            assert record is not None and record.status == "CANCELLED"
        assert signal_names(await history(own, order.id)).count("cancel_order") == 2


async def test_two_cancel_updates_accepted_together_return_the_units_once(stack: Stack) -> None:
    """Two API cancels are both accepted while routing holds the order (the first waits for
    the routing activity, the second for the first). Answers: 200 and 200, or 200 and 409;
    the units are cancelled once."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        gate = Gate()
        async with gated_worker(own, {"route_order": gate}):
            answers: list[asyncio.Task[tuple[int, Any]]] = []
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                await own.wait_status(order_id, "ROUTING")
                await eventually(lambda: arrived(gate), "route_order started")
                for reason in ("first click", "second click"):
                    answers.append(asyncio.create_task(cancel(own, order_id, reason)))
                    await wait_accepted(own, order_id, len(answers), answers)
            finally:
                gate.open()
            results = [await answer_of(a) for a in answers]
            codes = sorted(status for status, _ in results)
            assert codes in ([200, 200], [200, 409]), results
            await wait_closed(own, order_workflow_id(order_id))
            await assert_cancelled(own, order_id, channel, units=2, stock_before=before)


async def test_cancel_naming_a_line_twice_cancels_it_once(stack: Stack) -> None:
    """`line_ids: ["1", "1"]` is either refused (422) or cancels line 1 once: its CANCEL
    return must not hold more units than the line had open (it held 2 x 2 of 2)."""
    sku = unique_sku()
    channel = await stack.make_channel("inv")
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    before = await stock(stack, sku)
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    await stack.current_shipment(order_id, "WH-BERLIN")
    await settle_order(stack, order_id)
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        key="ops",
        json={"line_ids": ["1", "1"], "reason": "twice"},
    )
    if status == 422:
        view = await stack.order(order_id)
        assert view["status"] == "IN_FULFILLMENT" and view["returns"] == [], view
        return
    assert status == 200, body
    await wait_closed(stack, order_workflow_id(order_id))
    await assert_cancelled(stack, order_id, channel, units=2, stock_before=before)


# ---------------------------------------------------------------------------- 4
REPORTS = [
    "repeat_picked",
    "repeat_released",
    "unknown_release",
    "unknown_line",
    "picked_more_than_released",
    "backordered_more_than_released",
    "negative_quantity",
    "shipped_before_picked",
    "delivered_before_shipped",
    "cancelled_without_a_cancel",
]


def bad_report(kind: str, order_id: str) -> FulfillmentProgress:
    """R1: 2 units at Berlin, 1 picked and 1 backordered; R2: the backordered unit, released
    to Munich and waiting for its pick."""

    def report(seq: int, location: str, step: str, **fields: Any) -> FulfillmentProgress:
        return FulfillmentProgress(
            release_key=f"{order_id}-R{seq}",
            shipment_key=f"{order_id}-S{seq}",
            location_id=location,
            kind=step,
            **fields,
        )

    return {
        # what R1 reported, once more
        "repeat_picked": lambda: report(
            1, "WH-BERLIN", "picked", quantities={"1": 1}, backordered={"1": 1}
        ),
        # what R2 reported, once more
        "repeat_released": lambda: report(2, "WH-MUNICH", "released", quantities={"1": 1}),
        "unknown_release": lambda: report(
            9, "WH-BERLIN", "picked", quantities={"1": 0}, backordered={"1": 2}
        ),
        "unknown_line": lambda: report(
            2, "WH-MUNICH", "picked", quantities={"9": 0}, backordered={"9": 1}
        ),
        "picked_more_than_released": lambda: report(2, "WH-MUNICH", "picked", quantities={"1": 5}),
        "backordered_more_than_released": lambda: report(
            2, "WH-MUNICH", "picked", quantities={"1": 0}, backordered={"1": 5}
        ),
        "negative_quantity": lambda: report(
            2, "WH-MUNICH", "picked", quantities={"1": -1}, backordered={"1": 2}
        ),
        # R2 has not been picked, R1 has not been shipped
        "shipped_before_picked": lambda: report(
            2, "WH-MUNICH", "shipped", quantities={"1": 1}, carrier="DHL", tracking_number="X"
        ),
        "delivered_before_shipped": lambda: report(
            1, "WH-BERLIN", "delivered", quantities={"1": 1}
        ),
        # nobody asked to cancel: Munich still works on the unit, its stock stays reserved
        "cancelled_without_a_cancel": lambda: report(
            2, "WH-MUNICH", "cancelled", quantities={"1": 1}
        ),
    }[kind]()


async def order_facts(stack: Stack, order_id: str) -> dict[str, Any]:
    """What a report may change: lines, routing, releases, shipments, reservations."""
    view = await stack.order(order_id)
    return {
        "status": view["status"],
        "lines": [
            (
                line["line_id"],
                line["status"],
                line["quantity"],
                line["shipped_quantity"],
                line["cancelled_quantity"],
            )
            for line in view["lines"]
        ],
        "routing": len(view["routing"]),
        "releases": sorted(
            (r["release_key"], r["line_id"], r["location_id"], r["status"], r["status_quantity"])
            for r in view["releases"]
        ),
        "shipments": sorted(
            (s["shipment_key"], s["line_id"], s["status"], s["quantity"]) for s in view["shipments"]
        ),
        "stored_releases": sorted(
            (r.release_key, r.line_id, r.status, r.status_quantity)
            for r in await stack.store.fulfillment.releases(order_id)
        ),
        "reservations": sorted(
            (r.reservation_id, r.quantity, r.status)
            for r in await stack.store.inventory.reservations_for_order(order_id)
        ),
        "stored_shipments": sorted(
            (record.shipment_key, line.line_id, line.status, line.quantity)
            for record in await stack.store.fulfillment.shipments(order_id)
            for line in record.lines
        ),
    }


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}


def assert_release_invariants(facts: dict[str, Any], quantity: int) -> None:
    for name in ("releases", "stored_releases"):
        current: dict[str, int] = {}
        for row in facts[name]:
            current[row[1]] = current.get(row[1], 0) + (row[-1] == 1)
        assert all(n <= 1 for n in current.values()), (name, facts[name])
    reserved = sum(q for _, q, status in facts["reservations"] if status in (*HELD, "CONSUMED"))
    assert reserved <= quantity, facts["reservations"]
    # a shipment row's quantity stays 0 unless shipped
    for rows in (facts["shipments"], facts["stored_shipments"]):
        assert all(q == 0 for _, _, status, q in rows if status not in SHIPPED), rows


@pytest.mark.parametrize("kind", REPORTS)
async def test_bad_or_repeated_progress_report_changes_nothing(stack: Stack, kind: str) -> None:
    """A `fulfillment_progress` signal sent to the order by anyone who can signal (a reset
    child, the CLI): a repeat of a real report, or one naming an unknown release or line,
    or more units than released, changes nothing. (A repeated pick report used to re-add
    the backordered unit each time: a 2-unit line ended with 4 units over 3 releases.)"""
    sku = unique_sku()
    channel = await stack.make_channel("inv", backorder_retry_seconds=600)
    await stack.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 4)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    first = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{first}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 1}]},
    )
    assert status == 200, body
    second = await stack.current_shipment(order_id, "WH-MUNICH")
    assert second == f"{order_id}-S2"
    await settle_order(stack, order_id)
    before = await order_facts(stack, order_id)
    assert_release_invariants(before, 2)
    workflow_id = order_workflow_id(order_id)
    reports = signal_names(await history(stack, workflow_id)).count("fulfillment_progress")

    await stack.client.get_workflow_handle(workflow_id).signal(
        "fulfillment_progress", bad_report(kind, order_id)
    )
    await wait_history(
        stack,
        workflow_id,
        lambda h: signal_names(h).count("fulfillment_progress") > reports,
        "the report arrived",
    )
    await settle_order(stack, order_id)
    after = await order_facts(stack, order_id)
    assert_release_invariants(after, 2)
    assert after == before, changed(before, after)
    assert task_failures(await history(stack, workflow_id)) == []


# ---------------------------------------------------------------------------- 5
@pytest.mark.parametrize(
    "stage", ["IN_FULFILLMENT", "NOT_ANNOUNCED", "AWAITING_APPROVAL", "ON_HOLD", "BACKORDERED"]
)
async def test_temporal_cancellation_cancels_the_order(stack: Stack, stage: str) -> None:
    """`Request Cancellation` in the Temporal UI (handle.cancel()) is an order cancel: the
    order ends CANCELLED with its stock back and one CANCEL return; the location's work
    order is withdrawn. (It used to end the workflow CANCELED with the order still
    IN_FULFILLMENT and its stock reserved.)"""
    sku = unique_sku()
    if stage == "AWAITING_APPROVAL":
        channel = await approval_channel(stack)
    else:
        channel = await stack.make_channel("inv", backorder_retry_seconds=600)
    if stage in ("IN_FULFILLMENT", "AWAITING_APPROVAL", "BACKORDERED"):
        await stack.set_stock([("WH-BERLIN", sku, 2)])
    body = order_body(channel=channel, sku=sku, quantity=2)
    if stage == "ON_HOLD":
        body["payment"]["amount"] = "1.00"
    order_id = await stack.create_order(body, key="ops")
    key = None
    if stage in ("IN_FULFILLMENT", "BACKORDERED"):
        key = await stack.current_shipment(order_id, "WH-BERLIN")
    if stage == "BACKORDERED":
        status, answered = await stack.call(
            "POST",
            f"/v1/shipments/{key}/pick",
            key="WH-BERLIN",
            json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
        )
        assert status == 200, answered
        await stack.wait_for(
            order_id,
            lambda v: "backorder_waiting" in [e["type"] for e in v["events"]],
            "backorder waiting",
        )
    else:
        await stack.wait_status(order_id, stage)
    await settle_order(stack, order_id)
    before = await stock(stack, sku)
    if stage in ("IN_FULFILLMENT", "AWAITING_APPROVAL"):
        assert before == {("WH-BERLIN", sku): (2, 2)}
        before = {("WH-BERLIN", sku): (2, 0)}
    handle = stack.client.get_workflow_handle(order_workflow_id(order_id))

    await handle.cancel()

    async def cancelled() -> dict[str, Any] | None:
        closed = (await handle.describe()).status
        view = await stack.order(order_id)
        if closed in (None, WorkflowExecutionStatus.RUNNING):
            return None
        if view["status"] != "CANCELLED":
            pytest.fail(
                f"the workflow closed {closed.name} with the order {view['status']}; "
                f"reservations {await held(stack, order_id)}"
            )
        return view

    await eventually(cancelled, f"order {order_id} cancelled and closed")
    await assert_cancelled(stack, order_id, channel, units=2, stock_before=before)
    if key is not None:
        record = await stack.store.fulfillment.shipment(key)
        assert record is not None and record.status in ("CANCELLED", "BACKORDERED"), record
        berlin = await stack.store.fulfillment.open_shipments("WH-BERLIN")
        assert key not in {s.shipment_key for s in berlin}


# ---------------------------------------------------------------------------- 6
BAD_CHANNELS: dict[str, dict[str, Any]] = {
    "retry_infinite": {"backorder_retry_seconds": "Infinity"},
    "retry_beyond_any_timer": {"backorder_retry_seconds": 1e300},
    "return_window_out_of_range": {"return_window_days": 100000},
}
SANE = ("ON_HOLD", "IN_FULFILLMENT", "CANCELLED")


async def no_failing_tasks_or_retries(stack: Stack, order_id: str) -> None:
    """Fails at once when a workflow task failed or an activity keeps failing."""
    handle = stack.client.get_workflow_handle(order_workflow_id(order_id))
    failures = task_failures(await history(stack, handle.id))
    assert failures == [], failures[:1]
    for pending in (await handle.describe()).raw_description.pending_activities:
        assert pending.attempt < 4, (
            f"{pending.activity_type.name} failed {pending.attempt - 1} times: "
            f"{pending.last_failure.message}"
        )


@pytest.mark.parametrize("bad", list(BAD_CHANNELS))
async def test_bad_stored_channel_configuration_does_not_poison_the_order(
    stack: Stack, bad: str
) -> None:
    """The channel's stored configuration holds a value the API would (should) refuse,
    written straight into the store (an old release, a manual SQL fix). The order's
    workflow tasks must not fail: it reaches a sane state (ON_HOLD with a reason, or on
    with a bounded default, through a backorder wait) and answers reads."""
    sku = unique_sku()
    channel = await stack.make_channel("inv", backorder_max_attempts=5)
    config = await stack.store.config.channel(channel)
    assert config is not None
    await stack.store.config.upsert_channels([{**config, **BAD_CHANNELS[bad]}])
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), key="ops")

    async def sane() -> dict[str, Any] | None:
        await no_failing_tasks_or_retries(stack, order_id)
        status, view = await stack.call("GET", f"/v1/orders/{order_id}", key="ops")
        assert status == 200, view
        return view if view["status"] in SANE else None

    view = await eventually(sane, f"order {order_id} in one of {SANE}")
    if view["status"] == "ON_HOLD":
        assert view["hold_reasons"], view
        return
    assert view["status"] == "IN_FULFILLMENT", view
    # the backorder wait reads the retry interval
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
    )
    assert status == 200, body

    async def waiting() -> dict[str, Any] | None:
        await no_failing_tasks_or_retries(stack, order_id)
        status, view = await stack.call("GET", f"/v1/orders/{order_id}", key="ops")
        assert status == 200, view
        types = [e["type"] for e in view["events"]]
        done = "backorder_waiting" in types or view["status"] in ("ON_HOLD", "CANCELLED")
        return view if done else None

    await eventually(waiting, f"order {order_id} waiting for stock")
    await settle_order(stack, order_id)
    await no_failing_tasks_or_retries(stack, order_id)
    assert (await stack.call("GET", f"/v1/orders/{order_id}", key="ops"))[0] == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"backorder_retry_seconds": "Infinity"},
        {"backorder_retry_seconds": 1e300},
        {"max_distance_km": "Infinity"},
        {"callback_url": "file:///etc/passwd"},
        {"routing_weights": {"distance": "Infinity"}},
    ],
    ids=[
        "retry_infinite",
        "retry_beyond_any_timer",
        "distance_infinite",
        "callback_not_http",
        "weight_infinite",
    ],
)
async def test_channel_configuration_that_cannot_run_is_refused_on_write(
    stack: Stack, bad: dict[str, Any]
) -> None:
    """DESIGN 3: configuration is validated on write (finite, bounded, http/https URLs)."""
    channel_id = f"inv-bad-{unique_sku()[-8:].lower()}"
    status, body = await stack.call(
        "PUT", "/v1/sales-channels", json=[{"channel_id": channel_id, **bad}]
    )
    assert status == 422, body
    assert await stack.store.config.channel(channel_id) is None


# ---------------------------------------------------------------------------- 7
# More of the same kind, found while writing the above.


async def approval_channel(stack: Stack) -> str:
    return await stack.make_channel(
        "inv", approval_reasons=[{"reason": "credit", "rank": 1, "approvers": ["ann"]}]
    )


@pytest.mark.parametrize("decision", ["approve", "decline"])
async def test_approval_decision_and_cancel_in_one_task(stack: Stack, decision: str) -> None:
    """The approver decides while the customer cancels (both as signals, the way the UI and
    CLI send them; no worker runs, so one workflow task handles both). The order ends
    CANCELLED: not APPROVED and on to the response, and one CANCEL return only (a decline
    cancels the order too)."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await approval_channel(own)
        await own.set_stock([("WH-BERLIN", sku, 2)])
        before = await stock(own, sku)
        async with own.worker():
            order_id = await own.create_order(
                order_body(channel=channel, sku=sku, quantity=2), key="ops"
            )
            await own.wait_status(order_id, "AWAITING_APPROVAL")
            await settle(own, order_workflow_id(order_id))
        order = own.client.get_workflow_handle(order_workflow_id(order_id))
        await order.signal(
            "approval_decision",
            ApprovalDecisionInput(reason="credit", decision=decision, approver="ann"),
        )
        await order.signal("cancel_order", CancelInput(reason="changed my mind"))
        async with own.worker():
            await wait_closed(own, order.id)
            allowed = frozenset({"status_declined"} if decision == "decline" else ())
            view = await assert_cancelled(
                own, order_id, channel, units=2, stock_before=before, allowed=allowed
            )
        assert (view["releases"], view["documents"]) == ([], [])
        assert [line["planned_ship_date"] for line in view["lines"]] == [None]


async def test_cancel_of_one_line_while_routing_releases_its_reservation(stack: Stack) -> None:
    """Line A is cancelled while routing (held by a gate) reserves A and B. A ends
    CANCELLED with its reservation released and one CANCEL return; B goes on alone."""
    sku_a, sku_b = unique_sku(), unique_sku()
    body = order_body(sku=sku_a, quantity=1, price="10.00")
    body["lines"] = [
        {"line_id": "A", "sku": sku_a, "quantity": 1, "unit_price": "10.00"},
        {"line_id": "B", "sku": sku_b, "quantity": 1, "unit_price": "10.00"},
    ]
    body["payment"]["amount"] = "20.00"
    async with private_stack(stack) as own:
        body["sales_channel"] = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku_a, 1), ("WH-BERLIN", sku_b, 1)])
        gate = Gate()
        async with gated_worker(own, {"route_order": gate}):
            try:
                order_id = await own.create_order(body, key="ops")
                await own.wait_status(order_id, "ROUTING")
                await eventually(lambda: arrived(gate), "route_order started")
                answer = asyncio.create_task(
                    own.call(
                        "POST",
                        f"/v1/orders/{order_id}/cancel",
                        key="ops",
                        json={"line_ids": ["A"], "reason": "not needed"},
                    )
                )
                await wait_accepted(own, order_id, 1, [answer])
            finally:
                gate.open()
            status, answered = await answer_of(answer)
            assert status == 200, answered
            key = await own.current_shipment(order_id, "WH-BERLIN")
            await settle_order(own, order_id)
            view = await own.order(order_id)
        assert view["status"] == "IN_FULFILLMENT", view["status"]
        lines = {line["line_id"]: line for line in view["lines"]}
        assert (lines["A"]["status"], lines["A"]["cancelled_quantity"]) == ("CANCELLED", 1)
        assert lines["B"]["status"] == "RELEASED", lines["B"]
        assert returns(view) == [("CANCEL", [("A", 1)])]
        assert await stored_returns(own, order_id) == [("CANCEL", [("A", 1)])]
        assert [(s["line_id"], s["shipment_key"]) for s in view["shipments"]] == [("B", key)]
        assert [(line, loc, q) for line, loc, q, _ in await held(own, order_id)] == [
            ("B", "WH-BERLIN", 1)
        ]
        assert await stock(own, sku_a, sku_b) == {
            ("WH-BERLIN", sku_a): (1, 0),
            ("WH-BERLIN", sku_b): (1, 1),
        }


async def test_assignment_and_cancel_accepted_together(stack: Stack) -> None:
    """NOT_ANNOUNCED: operations assign Berlin by hand (its reservation held at a gate)
    while the customer cancels. Whichever way the assignment is answered, the order ends
    CANCELLED with nothing reserved and one CANCEL return."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        gate = Gate()
        async with gated_worker(own, {"assign_locations": gate}):
            answers: list[asyncio.Task[tuple[int, Any]]] = []
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                await own.wait_status(order_id, "NOT_ANNOUNCED")
                await own.set_stock([("WH-BERLIN", sku, 5)])
                before = await stock(own, sku)
                await settle(own, order_workflow_id(order_id))
                answers.append(
                    asyncio.create_task(
                        own.call(
                            "POST",
                            f"/v1/orders/{order_id}/assignments",
                            key="ops",
                            json={"assignments": [{"line_id": "1", "location_id": "WH-BERLIN"}]},
                        )
                    )
                )
                await wait_accepted(own, order_id, 1, answers)
                await eventually(lambda: arrived(gate), "assign_locations started")
                answers.append(asyncio.create_task(cancel(own, order_id)))
                await wait_accepted(own, order_id, 2, answers)
            finally:
                gate.open()
            (assigned, assign_body), (cancelled, cancel_body) = [
                await answer_of(a) for a in answers
            ]
            assert assigned in (200, 409), assign_body
            assert cancelled == 200, cancel_body
            await wait_closed(own, order_workflow_id(order_id))
            view = await assert_cancelled(
                own,
                order_id,
                channel,
                units=2,
                stock_before=before,
                allowed=frozenset({"status_routing"}),
            )
        assert (view["releases"], view["documents"]) == ([], [])


async def test_cancel_while_waiting_for_backordered_stock(stack: Stack) -> None:
    """The only unit was not found; no location has stock, so it waits on the channel's
    timer. A cancel now ends the order CANCELLED and closed, with one CANCEL return."""
    sku = unique_sku()
    channel = await stack.make_channel("inv", backorder_retry_seconds=600)
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
    )
    assert status == 200, body
    await stack.wait_for(
        order_id,
        lambda v: "backorder_waiting" in [e["type"] for e in v["events"]],
        "backorder waiting",
    )
    await settle_order(stack, order_id)
    before = await stock(stack, sku)  # the unit not found is written off
    status, body = await cancel(stack, order_id)
    assert status == 200, body
    await wait_closed(stack, order_workflow_id(order_id))
    await assert_cancelled(stack, order_id, channel, units=1, stock_before=before)


async def test_repeated_cancelled_report_counts_once(stack: Stack) -> None:
    """Line A of a release is cancelled; the release reports it `cancelled`. The same
    report again (a reset child, the CLI) must not count A's units twice."""
    sku_a, sku_b = unique_sku(), unique_sku()
    body = order_body(sku=sku_a, quantity=1, price="10.00")
    body["lines"] = [
        {"line_id": "A", "sku": sku_a, "quantity": 2, "unit_price": "10.00"},
        {"line_id": "B", "sku": sku_b, "quantity": 1, "unit_price": "10.00"},
    ]
    body["payment"]["amount"] = "30.00"
    body["sales_channel"] = await stack.make_channel("inv")
    await stack.set_stock([("WH-BERLIN", sku_a, 2), ("WH-BERLIN", sku_b, 1)])
    order_id = await stack.create_order(body, key="ops")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, answered = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        key="ops",
        json={"line_ids": ["A"], "reason": "not needed"},
    )
    assert status == 200, answered
    await stack.wait_for(
        order_id, lambda v: v["returns"] != [], "line A cancelled and its return recorded"
    )
    await settle_order(stack, order_id)
    before = await order_facts(stack, order_id)
    workflow_id = order_workflow_id(order_id)
    reports = signal_names(await history(stack, workflow_id)).count("fulfillment_progress")
    await stack.client.get_workflow_handle(workflow_id).signal(
        "fulfillment_progress",
        FulfillmentProgress(
            release_key=f"{order_id}-R1",
            shipment_key=key,
            location_id="WH-BERLIN",
            kind="cancelled",
            quantities={"A": 1},
        ),
    )
    await wait_history(
        stack,
        workflow_id,
        lambda h: signal_names(h).count("fulfillment_progress") > reports,
        "the report arrived",
    )
    await settle_order(stack, order_id)
    after = await order_facts(stack, order_id)
    assert after == before, changed(before, after)
    view = await stack.order(order_id)
    lines = {line["line_id"]: line for line in view["lines"]}
    assert (lines["A"]["status"], lines["A"]["cancelled_quantity"]) == ("CANCELLED", 2)
    assert returns(view) == [("CANCEL", [("A", 2)])]


@pytest.mark.parametrize(
    ("stage", "activity_name"),
    [
        ("ROUTING", "route_order"),
        ("APPROVED", "send_order_response"),
        ("RESPONDED", "create_documents"),
        ("DOCUMENTED", "submit_work_orders"),
    ],
)
async def test_temporal_cancellation_while_a_stage_activity_runs(
    stack: Stack, stage: str, activity_name: str
) -> None:
    """`Request Cancellation` arrives while the stage's activity runs (held by a gate, then
    let through: it completes after the request). The order still ends CANCELLED and
    closed, with whatever that activity reserved or released given back, one CANCEL
    return, and no work order left open."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        gate = Gate()
        async with gated_worker(own, {activity_name: gate}):
            handle = None
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                await own.wait_status(order_id, stage)
                await eventually(lambda: arrived(gate), f"{activity_name} started")
                handle = own.client.get_workflow_handle(order_workflow_id(order_id))
                await handle.cancel()
                await wait_history(
                    own,
                    handle.id,
                    reacted_to_cancellation,
                    "the cancellation handled while the activity is held",
                )
            finally:
                gate.open()
            assert handle is not None

            async def closed() -> bool | None:
                events = await history(own, handle.id)
                return True if events[-1].event_type in CLOSED else None

            await eventually(closed, f"{handle.id} closed after the cancellation")
            # the held activity has finished (its effects are in the store) before we look
            await eventually(
                lambda: asyncio.sleep(0, True if gate.idle else None), f"{activity_name} done"
            )
            await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
            assert await own.store.fulfillment.open_shipments("WH-BERLIN") == [] or all(
                s.order_id != order_id
                for s in await own.store.fulfillment.open_shipments("WH-BERLIN")
            )


@pytest.mark.parametrize("wait", ["ON_HOLD", "NOT_ANNOUNCED"])
async def test_resume_and_cancel_in_one_task(stack: Stack, wait: str) -> None:
    """Operations resume a waiting order (the fix is in: payment corrected, stock arrived)
    while the customer cancels; both signals reach the order while no worker runs. The
    order ends CANCELLED with nothing reserved, and does not go on to the response."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel("inv")
        body = order_body(channel=channel, sku=sku, quantity=2)
        fixed = dict(body["payment"])
        if wait == "ON_HOLD":
            await own.set_stock([("WH-BERLIN", sku, 3)])
            body["payment"]["amount"] = "1.00"
        async with own.worker():
            order_id = await own.create_order(body, key="ops")
            await own.wait_status(order_id, wait)
            await settle(own, order_workflow_id(order_id))
        if wait == "NOT_ANNOUNCED":
            await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        order = own.client.get_workflow_handle(order_workflow_id(order_id))
        resume = ResumeInput(payment=Payment.model_validate(fixed), comment="fixed")
        await order.signal("resume", resume)
        await order.signal("cancel_order", CancelInput(reason="changed my mind"))
        async with own.worker():
            await wait_closed(own, order.id)
            view = await assert_cancelled(own, order_id, channel, units=2, stock_before=before)
        assert (view["releases"], view["documents"]) == ([], [])


async def test_cancel_while_rerouting_after_approval(stack: Stack) -> None:
    """The approval asks for a new routing; the customer cancels while it runs (the second
    `route_order` held by a gate). The order ends CANCELLED with every reservation, the
    first routing's and the second's, given back."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        channel = await own.make_channel(
            "inv",
            approval_reasons=[
                {
                    "reason": "credit",
                    "rank": 1,
                    "approvers": ["ann"],
                    "reroute_after_approval": True,
                }
            ],
        )
        await own.set_stock([("WH-BERLIN", sku, 3)])
        before = await stock(own, sku)
        gate = Gate(hold_from=2)
        async with gated_worker(own, {"route_order": gate}):
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                await own.wait_status(order_id, "AWAITING_APPROVAL")
                order = own.client.get_workflow_handle(order_workflow_id(order_id))
                await order.signal(
                    "approval_decision",
                    ApprovalDecisionInput(reason="credit", decision="approve", approver="ann"),
                )
                await eventually(lambda: arrived(gate), "the second route_order started")
                answer = asyncio.create_task(cancel(own, order_id))
                await wait_accepted(own, order_id, 1, [answer])
            finally:
                gate.open()
            status, body = await answer_of(answer)
            assert status == 200, body
            await wait_closed(own, order.id)
            await eventually(
                lambda: asyncio.sleep(0, True if gate.idle else None), "route_order done"
            )
            view = await assert_cancelled(
                own,
                order_id,
                channel,
                units=2,
                stock_before=before,
                allowed=frozenset({"status_routing"}),
            )
        assert (view["releases"], view["documents"]) == ([], [])


@pytest.mark.parametrize("policy", ["backorder_exhausted", "not_announced", "approval_timeout"])
async def test_cancels_by_the_orders_own_policy_record_their_return(
    stack: Stack, policy: str
) -> None:
    """Units the order's policy cancels (backorder retries used up, NOT_ANNOUNCED with
    auto-cancel, an approval timing out with `decline`) come back like a customer's
    cancel: one CANCEL return, nothing reserved, the order CANCELLED and closed."""
    sku = unique_sku()
    configs: dict[str, dict[str, Any]] = {
        "backorder_exhausted": {"backorder_retry_seconds": 1, "backorder_max_attempts": 1},
        "not_announced": {"auto_cancel_not_announced": True},
        "approval_timeout": {
            "approval_reasons": [
                {
                    "reason": "credit",
                    "rank": 1,
                    "approvers": ["ann"],
                    "timeout_seconds": 1,
                    "timeout_action": "decline",
                }
            ]
        },
    }
    channel = await stack.make_channel("inv", **configs[policy])
    await stack.set_stock([("WH-BERLIN", sku, 0 if policy == "not_announced" else 2)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    if policy == "backorder_exhausted":
        key = await stack.current_shipment(order_id, "WH-BERLIN")
        status, body = await stack.call(
            "POST",
            f"/v1/shipments/{key}/pick",
            key="WH-BERLIN",
            json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
        )
        assert status == 200, body
    await wait_closed(stack, order_workflow_id(order_id))
    # Berlin's two units: not found (written off), never there, or back after the decline
    on_hand = 2 if policy == "approval_timeout" else 0
    await assert_cancelled(
        stack,
        order_id,
        channel,
        units=2,
        stock_before={("WH-BERLIN", sku): (on_hand, 0)},
        allowed=frozenset({"status_declined", "status_not_announced"}),
    )


@pytest.mark.parametrize(
    ("signal", "payload"),
    [
        ("cancel_order", {"lines": ["1"], "reason": "typo in the field name"}),
        ("resume", {"comment": 42, "payment": "paid"}),
        ("approval_decision", {"reason": "credit", "decision": "maybe"}),
        ("fulfillment_progress", {"release_key": "R1", "kind": "exploded"}),
        ("cancel_order", "not even an object"),
    ],
    ids=["cancel_typo", "resume_wrong_types", "decision_unknown", "progress_unknown_kind", "text"],
)
async def test_malformed_signal_does_not_poison_the_order(
    stack: Stack, signal: str, payload: Any
) -> None:
    """A signal whose payload does not fit its type (a typo in `temporal workflow signal
    --input`, an old client) is dropped: the order's workflow tasks keep completing, it
    answers reads, and a proper cancel afterwards still works."""
    sku = unique_sku()
    channel = await stack.make_channel("inv")
    await stack.set_stock([("WH-BERLIN", sku, 2)])
    before = await stock(stack, sku)
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    await stack.current_shipment(order_id, "WH-BERLIN")
    await settle_order(stack, order_id)
    workflow_id = order_workflow_id(order_id)
    handle = stack.client.get_workflow_handle(workflow_id)
    await handle.signal(signal, payload)
    await wait_history(
        stack,
        workflow_id,
        lambda h: signal in signal_names(h) and (idle(h) or bool(task_failures(h))),
        "the signal handled",
    )
    assert task_failures(await history(stack, workflow_id)) == []
    assert (await stack.order(order_id))["status"] == "IN_FULFILLMENT"
    status, body = await cancel(stack, order_id)
    assert status == 200, body
    await wait_closed(stack, workflow_id)
    await assert_cancelled(stack, order_id, channel, units=2, stock_before=before)
    assert task_failures(await history(stack, workflow_id)) == []


async def test_negative_stored_safety_buffer_never_promises_more_than_is_there(
    stack: Stack,
) -> None:
    """A safety buffer below zero (refused by the API, written straight into the store)
    must not make availability or routing promise more than is physically available:
    Berlin has 1 unit; an order for 3 does not reserve them there, and the order reaches
    a state an operator can act on (no activity retrying for ever, no failed task)."""
    sku = unique_sku()
    channel = await stack.make_channel("inv")
    config = await stack.store.config.channel(channel)
    assert config is not None
    await stack.store.config.upsert_channels([{**config, "safety_buffers": {"WH-BERLIN": -5}}])
    await stack.add_key(channel, "webshop", channel)
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=3), key="ops")

    async def settled() -> dict[str, Any] | None:
        await no_failing_tasks_or_retries(stack, order_id)
        view = await stack.order(order_id)
        waiting = ("ON_HOLD", "NOT_ANNOUNCED", "CHECK_ANNOUNCED", "CANCELLED")
        return view if view["status"] in waiting else None

    view = await eventually(settled, f"order {order_id} waiting for an operator")
    assert view["hold_reasons"] or view["status"] == "CANCELLED", view
    assert await held(stack, order_id) == []
    assert await stock(stack, sku) == {("WH-BERLIN", sku): (1, 0)}
    assert (await stack.atp(sku, channel)).get("WH-BERLIN", 0) <= 1


@pytest.mark.parametrize("stage", ["AWAITING_APPROVAL", "IN_FULFILLMENT"])
async def test_api_cancel_and_temporal_cancellation_together(stack: Stack, stage: str) -> None:
    """The customer's cancel is under way (its store write held at a gate) when an engineer
    also presses `Request Cancellation`. One cancel's worth happens: CANCELLED, one CANCEL
    return, the stock back once."""
    sku = unique_sku()
    async with private_stack(stack) as own:
        if stage == "AWAITING_APPROVAL":
            channel = await approval_channel(own)
        else:
            channel = await own.make_channel("inv")
        await own.set_stock([("WH-BERLIN", sku, 2)])
        gate = Gate()
        async with gated_worker(own, {"cancel_order_lines": gate}):
            try:
                order_id = await own.create_order(
                    order_body(channel=channel, sku=sku, quantity=2), key="ops"
                )
                if stage == "IN_FULFILLMENT":
                    await own.current_shipment(order_id, "WH-BERLIN")
                await own.wait_status(order_id, stage)
                await settle_order(own, order_id)
                answer = asyncio.create_task(cancel(own, order_id))
                await eventually(lambda: arrived(gate), "the cancel's store write started")
                handle = own.client.get_workflow_handle(order_workflow_id(order_id))
                await handle.cancel()
                await wait_history(
                    own,
                    handle.id,
                    reacted_to_cancellation,
                    "the cancellation handled while the activity is held",
                )
            finally:
                gate.open()
            failures = task_failures(await history(own, handle.id))
            assert failures == [], failures[0][:300]
            status, body = await answer_of(answer)
            assert status == 200, body
            await wait_closed(own, handle.id)
            await assert_cancelled(
                own, order_id, channel, units=2, stock_before={("WH-BERLIN", sku): (2, 0)}
            )
