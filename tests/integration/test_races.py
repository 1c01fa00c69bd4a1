"""Cancel races, made deterministic.

Each test runs its own API and worker on a private task queue, so it can stop its worker.
The competing messages are delivered while no worker runs (the Temporal server accepts a
signal durably without one), then workers handle them.

The order and its releases (FulfillmentWorkflow children) share that task queue, so a
plain restart lets both run at once. To fix which side handles its message first, a test
runs a worker with only one of the two workflow types for a phase: the other type's
workflow task fails there ("not registered"), is recorded once in its history, and the
server retries it after its backoff (about 10 s) on the next full worker. That is how a
release can close before the order has seen the cancel, and how a release can get the
store's report and the order's `cancel_lines` in one workflow task.

No fixed sleeps: every wait polls a condition under the suite's deadline (WAIT_SECONDS,
which must exceed the server's ~10 s retry backoff).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from activities import all_activities
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually, kinds, private_stack
from tests.integration.gates import history as events
from workflows.fulfillment import FulfillmentWorkflow, fulfillment_workflow_id
from workflows.model import CancelInput, PickedLine, PickReport, ShipReport
from workflows.order import OrderWorkflow, order_workflow_id

E = EventType
# events that follow a workflow task's completion without leaving work in flight
QUIET = {
    E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    E.EVENT_TYPE_MARKER_RECORDED,
    E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    E.EVENT_TYPE_TIMER_STARTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,  # a report answered: nothing in flight
}
TASK_OUTCOMES = {
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
NOT_REGISTERED = "is not registered on this worker"


# ---------------------------------------------------------------------------- helpers
def only(own: Stack, workflow: type[Any]) -> Worker:
    """A worker on the test's queue for one workflow type and every activity."""
    return Worker(
        own.client,
        task_queue=own.settings.task_queue,
        workflows=[workflow],
        activities=all_activities(own.store, webhook_secret=own.settings.webhook_secret),
    )


def signals(history: Sequence[HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history
        if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


def idle(history: Sequence[HistoryEvent]) -> bool:
    """Closed, or its last workflow task completed and left nothing in flight."""
    last = history[-1].event_type
    if last in (
        E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    ):
        return True
    done = [
        i for i, e in enumerate(history) if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    if not done:
        return False
    tail = [e.event_type for e in history[done[-1] + 1 :]]
    # a report taken and answered in the one task (a release's step as a local activity)
    accepted = tail.count(E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    answered = tail.count(E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
    return accepted <= answered and all(
        t in QUIET or t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for t in tail
    )


async def wait_history(
    own: Stack, workflow_id: str, check: Callable[[list[HistoryEvent]], bool], what: str
) -> list[HistoryEvent]:
    async def probe() -> list[HistoryEvent] | None:
        history = await events(own, workflow_id)
        return history if check(history) else None

    return await eventually(probe, f"{workflow_id}: {what}")


async def wait_task_ok(own: Stack, workflow_id: str) -> None:
    """After a phase on a worker that could not run this workflow: its task is retried
    and completes (only then does it answer queries, e.g. GET /v1/orders/{id})."""

    def recovered(history: list[HistoryEvent]) -> bool:
        outcomes = [e.event_type for e in history if e.event_type in TASK_OUTCOMES]
        return bool(outcomes) and outcomes[-1] == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

    await wait_history(own, workflow_id, recovered, "a workflow task completed")


async def wait_closed(own: Stack, workflow_id: str) -> WorkflowExecutionStatus:
    handle = own.client.get_workflow_handle(workflow_id)

    async def probe() -> WorkflowExecutionStatus | None:
        status = (await handle.describe()).status
        return None if status in (None, WorkflowExecutionStatus.RUNNING) else status

    return await eventually(probe, f"{workflow_id} closed")


async def child_ids(own: Stack, order_id: str) -> list[str]:
    """Every child workflow the order started, from the order's own history."""
    return [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in await events(own, order_workflow_id(order_id))
        if e.event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]


async def assert_only_planned_task_failures(own: Stack, *workflow_ids: str) -> None:
    """The only failed workflow tasks are the ones a one-type worker caused on purpose."""
    for workflow_id in workflow_ids:
        for e in await events(own, workflow_id):
            if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                message = e.workflow_task_failed_event_attributes.failure.message
                assert NOT_REGISTERED in message, (workflow_id, message)


async def release_of(own: Stack, shipment_key: str) -> WorkflowHandle[Any, Any]:
    record = await own.store.fulfillment.shipment(shipment_key)
    assert record is not None
    return own.client.get_workflow_handle(record.workflow_id)


async def stock(own: Stack, *skus: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(location, sku) -> (on_hand, reserved) in the store."""
    return {
        (r.location_id, r.sku): (r.on_hand, r.reserved)
        for r in await own.store.inventory.stock(skus)
    }


async def cancel_delivered(own: Stack, order_id: str) -> None:
    """The order has sent `cancel_lines` to a release, the release's history holds it,
    and the order is idle again."""
    await wait_history(
        own,
        order_workflow_id(order_id),
        lambda h: (
            E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED in [e.event_type for e in h]
            and idle(h)
        ),
        "cancel_lines delivered to the release",
    )


async def reported(own: Stack, release_id: str, reports: int) -> None:
    """The release has delivered `reports` progress signals to the order and is idle: each
    step's (local) activity signals the order before it completes. (Watched on the release: the
    order's history does not show signals that arrive while its failed workflow task waits
    for a retry.)"""
    await wait_history(
        own,
        release_id,
        lambda h: (
            sum(
                e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                or (
                    e.event_type == E.EVENT_TYPE_MARKER_RECORDED
                    and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
                )
                for e in h
            )
            >= reports
            and idle(h)
        ),
        f"{reports} reports delivered to the order",
    )


async def settle(own: Stack, *workflow_ids: str) -> None:
    for workflow_id in workflow_ids:
        await wait_history(own, workflow_id, idle, "idle")


def pick(**picked: int) -> PickReport:
    return PickReport(lines=[PickedLine(line_id=k, picked_quantity=v) for k, v in picked.items()])


def returns(view: dict[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        (r["type"], [(line["line_id"], line["quantity"]) for line in r["lines"]])
        for r in view["returns"]
    ]


# ---------------------------------------------------------------------------- (a)
@pytest.mark.parametrize("first", ["release", "order"])
async def test_cancel_and_pick_shortfall_together_cancel_the_units(
    stack: Stack, first: str
) -> None:
    """The store reports 1 of 2 units found while the customer cancels the line.

    Arrival (no worker running): the pick signal to the release, then `cancel_order` to
    the order. Then
    - first="release": a release-only worker handles the pick and reports the shortfall to
      the order; the order then handles the cancel and the shortfall report in one task,
      the cancel first;
    - first="order": an order-only worker handles the cancel, whose `cancel_lines` reaches
      the release; the release then handles the pick and the cancel in one task, the pick
      first (the report wins, then the cancel takes the picked unit).
    Either way the missing unit is cancelled, not re-routed (Munich has stock to re-route
    to: a second release would show), and the picked unit's reservation is released.
    """
    sku = unique_sku()
    async with private_stack(stack) as own:
        await own.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 2)])
        async with own.worker():
            order_id = await own.create_order(order_body(sku=sku, quantity=2))
            key = await own.current_shipment(order_id, "WH-BERLIN")
            release = await release_of(own, key)
            order = own.client.get_workflow_handle(order_workflow_id(order_id))
            await settle(own, order.id, release.id)

        await release.signal("pick", pick(**{"1": 1}))
        await order.signal("cancel_order", CancelInput(reason="customer request"))
        if first == "release":
            async with only(own, FulfillmentWorkflow):
                await reported(own, release.id, 1)  # picked (the order took the release itself)
        else:
            async with only(own, OrderWorkflow):
                await cancel_delivered(own, order_id)

        async with own.worker():
            await wait_task_ok(own, order.id if first == "release" else release.id)
            await own.wait_status(order_id, "CANCELLED")
            assert await wait_closed(own, order.id) == WorkflowExecutionStatus.COMPLETED
            children = await child_ids(own, order_id)
            assert children == [fulfillment_workflow_id(order_id, 1)]
            assert await wait_closed(own, children[0]) == WorkflowExecutionStatus.COMPLETED
            # the status turns CANCELLED before the cancel has recorded its return
            view = await own.order(order_id)
        await assert_only_planned_task_failures(own, order.id, *children)
        if first == "release":
            sequence = signals(await events(own, order.id))
            # the cancel ahead of the picked report (one task); cancelled (the order
            # recorded the release as it started it: no report of it)
            assert sequence == [
                "cancel_order",
                "fulfillment_progress",
                "fulfillment_progress",
            ], sequence
        else:
            assert signals(await events(own, release.id)) == ["pick", "cancel_lines"]

        line = view["lines"][0]
        assert (line["status"], line["cancelled_quantity"], line["shipped_quantity"]) == (
            "CANCELLED",
            2,
            0,
        )
        # one routing decision, one release: the missing unit was not re-routed
        assert len(view["routing"]) == 1
        assert {r["release_key"] for r in view["releases"]} == {f"{order_id}-R1"}
        assert {r.release_key for r in await own.store.fulfillment.releases(order_id)} == {
            f"{order_id}-R1"
        }
        assert returns(view) == [("CANCEL", [("1", 2)])]
        record = await own.store.fulfillment.shipment(key)
        assert record is not None and record.status == "CANCELLED"
        reservations = await own.store.inventory.reservations_for_order(order_id)
        assert [(r.location_id, r.status) for r in reservations] == [("WH-BERLIN", "RELEASED")]
        # the unit not found is written off; the picked one is available again
        assert await stock(own, sku) == {("WH-BERLIN", sku): (1, 0), ("WH-MUNICH", sku): (2, 0)}
        assert await own.atp(sku) == {"WH-BERLIN": 1, "WH-MUNICH": 2}


# ---------------------------------------------------------------------------- (b)
async def test_cancel_reaching_a_closed_release_cancels_the_order(stack: Stack) -> None:
    """The store finds 0 of 1, so the release reports the shortfall and closes; only then
    does the order handle the customer's cancel, while it still counts the line as held
    by that release, so its `cancel_lines` goes to a closed workflow.

    Arrival (no worker running): the pick signal (0 of 1) to the release, then
    `cancel_order` to the order. A release-only worker runs the release to its end; then a
    full worker runs the order, which handles the cancel and the shortfall report in one
    task, the cancel first.
    """
    sku = unique_sku()
    async with private_stack(stack) as own:
        await own.set_stock([("WH-BERLIN", sku, 1), ("WH-MUNICH", sku, 1)])
        async with own.worker():
            order_id = await own.create_order(order_body(sku=sku, quantity=1))
            key = await own.current_shipment(order_id, "WH-BERLIN")
            release = await release_of(own, key)
            order = own.client.get_workflow_handle(order_workflow_id(order_id))
            await settle(own, order.id, release.id)

        await release.signal("pick", pick(**{"1": 0}))
        await order.signal("cancel_order", CancelInput(reason="customer request"))
        async with only(own, FulfillmentWorkflow):
            assert await wait_closed(own, release.id) == WorkflowExecutionStatus.COMPLETED

        async with own.worker():
            await wait_task_ok(own, order.id)
            await own.wait_status(order_id, "CANCELLED")
            assert await wait_closed(own, order.id) == WorkflowExecutionStatus.COMPLETED
            view = await own.order(order_id)
        history = await events(own, order.id)
        # the cancel ahead of the shortfall report: one task handled both
        assert signals(history) == ["cancel_order", "fulfillment_progress"]
        # the cancel did go to the closed release, and the order lived on
        assert "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED" in kinds(history), kinds(history)
        assert "WORKFLOW_EXECUTION_FAILED" not in kinds(history)
        await assert_only_planned_task_failures(own, order.id, release.id)

        line = view["lines"][0]
        assert (line["status"], line["cancelled_quantity"]) == ("CANCELLED", 1)
        assert await child_ids(own, order_id) == [release.id]
        assert {r["release_key"] for r in view["releases"]} == {f"{order_id}-R1"}
        assert returns(view) == [("CANCEL", [("1", 1)])]
        reservations = await own.store.inventory.reservations_for_order(order_id)
        assert all(r.status != "ACTIVE" for r in reservations), reservations
        assert await stock(own, sku) == {("WH-BERLIN", sku): (0, 0), ("WH-MUNICH", sku): (1, 0)}
        assert await own.atp(sku) == {"WH-BERLIN": 0, "WH-MUNICH": 1}


# ---------------------------------------------------------------------------- (c)
@pytest.mark.parametrize("first", ["release", "order"])
async def test_release_with_cancelled_picked_line_and_short_line_closes(
    stack: Stack, first: str
) -> None:
    """One release holds lines A and B; the store finds A and not B while the customer
    cancels A. Nothing is left to ship from the release, so it must close (it used to wait
    for a ship report forever); B is re-routed to Munich and delivered.

    Arrival (no worker running): the pick signal (A 1, B 0) to the release, then
    `cancel_order` for line A to the order. Then
    - first="release": a release-only worker handles the pick, reports it and waits for
      the ship of A; the order then handles the cancel and the pick report in one task,
      the cancel first, and the release gets `cancel_lines` while it waits for the ship;
    - first="order": an order-only worker handles the cancel, whose `cancel_lines`
      reaches the release; the release then handles the pick and the cancel in one task,
      the pick first.
    """
    sku_a, sku_b = unique_sku(), unique_sku()
    body = order_body(sku=sku_a, quantity=1, price="10.00")
    body["lines"] = [
        {"line_id": "A", "sku": sku_a, "quantity": 1, "unit_price": "10.00"},
        {"line_id": "B", "sku": sku_b, "quantity": 1, "unit_price": "10.00"},
    ]
    body["payment"]["amount"] = "20.00"
    async with private_stack(stack) as own:
        await own.set_stock(
            [("WH-BERLIN", sku_a, 1), ("WH-BERLIN", sku_b, 1), ("WH-MUNICH", sku_b, 1)]
        )
        async with own.worker():
            order_id = await own.create_order(body)
            key = await own.current_shipment(order_id, "WH-BERLIN")
            view = await own.order(order_id)
            assert sorted((s["line_id"], s["shipment_key"]) for s in view["shipments"]) == [
                ("A", key),
                ("B", key),
            ]
            release = await release_of(own, key)
            order = own.client.get_workflow_handle(order_workflow_id(order_id))
            await settle(own, order.id, release.id)

        await release.signal("pick", pick(A=1, B=0))
        await order.signal("cancel_order", CancelInput(line_ids=["A"], reason="customer request"))
        if first == "release":
            async with only(own, FulfillmentWorkflow):
                await reported(own, release.id, 1)  # picked (the order took the release itself)
        else:
            async with only(own, OrderWorkflow):
                await cancel_delivered(own, order_id)

        async with own.worker():
            await wait_task_ok(own, order.id if first == "release" else release.id)
            second = await own.current_shipment(order_id, "WH-MUNICH")
            await own.fulfil(second, "WH-MUNICH", {"B": 1})
            view = await own.wait_status(order_id, "DELIVERED")
            children = await child_ids(own, order_id)
            assert children == [release.id, fulfillment_workflow_id(order_id, 2)]
            for child in children:
                assert await wait_closed(own, child) == WorkflowExecutionStatus.COMPLETED
            order_status = (await order.describe()).status
            view = await own.order(order_id)
        assert order_status == WorkflowExecutionStatus.RUNNING  # in the return window
        await assert_only_planned_task_failures(own, order.id, *children)
        assert signals(await events(own, release.id)) == ["pick", "cancel_lines"]
        if first == "release":
            # the cancel ahead of the pick report: one task handled both
            sequence = signals(await events(own, order.id))
            assert sequence[:2] == ["cancel_order", "fulfillment_progress"]

        lines = {line["line_id"]: line for line in view["lines"]}
        assert (lines["A"]["status"], lines["A"]["cancelled_quantity"]) == ("CANCELLED", 1)
        assert (lines["B"]["status"], lines["B"]["delivered_quantity"]) == ("DELIVERED", 1)
        assert returns(view) == [("CANCEL", [("A", 1)])]
        record = await own.store.fulfillment.shipment(key)
        assert record is not None
        assert {(x.line_id, x.status) for x in record.lines} == {
            ("A", "CANCELLED"),
            ("B", "BACKORDERED"),
        }
        assert key not in {
            s.shipment_key for s in await own.store.fulfillment.open_shipments("WH-BERLIN")
        }
        reservations = await own.store.inventory.reservations_for_order(order_id)
        assert all(r.status != "ACTIVE" for r in reservations), reservations
        assert await stock(own, sku_a, sku_b) == {
            ("WH-BERLIN", sku_a): (1, 0),  # A's reservation released
            ("WH-BERLIN", sku_b): (0, 0),  # B not found: written off
            ("WH-MUNICH", sku_b): (0, 0),  # B shipped from Munich
        }


# ---------------------------------------------------------------------------- (d)
@pytest.mark.parametrize("arrival", ["ship_first", "cancel_first"])
async def test_ship_and_cancel_together_ship_wins(stack: Stack, arrival: str) -> None:
    """The release is picked (2 of 2); the store's ship report and the customer's cancel
    meet in one workflow task of the release. The units are on the truck: the ship wins,
    the cancel changes nothing.

    Arrival (no worker running), as the release's history holds them:
    - ship_first: the ship signal to the release, then `cancel_order` to the order; an
      order-only worker turns the cancel into `cancel_lines` to the release;
    - cancel_first: `cancel_order` to the order, an order-only worker delivers
      `cancel_lines` to the release, then (no worker again) the ship signal.
    Then a full worker runs the release, which handles both in one task.
    """
    sku = unique_sku()
    async with private_stack(stack) as own:
        await own.set_stock([("WH-BERLIN", sku, 3)])
        async with own.worker():
            order_id = await own.create_order(order_body(sku=sku, quantity=2))
            key = await own.current_shipment(order_id, "WH-BERLIN")
            status, answer = await own.call(
                "POST",
                f"/v1/shipments/{key}/pick",
                key="WH-BERLIN",
                json={"lines": [{"line_id": "1", "picked_quantity": 2}]},
            )
            assert status == 200, answer
            await own.wait_for(
                order_id, lambda v: v["shipments"][0]["status"] == "PICKED", "pick recorded"
            )
            release = await release_of(own, key)
            order = own.client.get_workflow_handle(order_workflow_id(order_id))
            await settle(own, order.id, release.id)

        ship = ShipReport(carrier="DHL", tracking_number="T-RACE")
        if arrival == "ship_first":
            await release.signal("ship", ship)
        await order.signal("cancel_order", CancelInput(reason="customer request"))
        async with only(own, OrderWorkflow):
            await cancel_delivered(own, order_id)
        if arrival == "cancel_first":
            await release.signal("ship", ship)

        async with own.worker():
            await wait_task_ok(own, release.id)
            view = await own.wait_status(order_id, "SHIPPED")
            shipment = view["shipments"][0]
            assert (shipment["status"], shipment["quantity"], shipment["carrier"]) == (
                "SHIPPED",
                2,
                "DHL",
            )
            line = view["lines"][0]
            assert (line["shipped_quantity"], line["cancelled_quantity"]) == (2, 0)
            assert returns(view) == []
            assert "shipment_cancelled" not in [e["type"] for e in view["events"]]
            record = await own.store.fulfillment.shipment(key)
            assert record is not None and record.status == "SHIPPED"
            assert [(x.quantity, x.picked_quantity) for x in record.lines] == [(2, 2)]
            reservations = await own.store.inventory.reservations_for_order(order_id)
            assert [(r.quantity, r.status) for r in reservations] == [(2, "CONSUMED")]
            assert await stock(own, sku) == {("WH-BERLIN", sku): (1, 0)}
            assert await own.atp(sku) == {"WH-BERLIN": 1}

            status, answer = await own.call(
                "POST", f"/v1/shipments/{key}/deliver", key="WH-BERLIN", json={}
            )
            assert status == 200, answer
            view = await own.wait_status(order_id, "DELIVERED")
            assert view["lines"][0]["delivered_quantity"] == 2
            assert await wait_closed(own, release.id) == WorkflowExecutionStatus.COMPLETED
            view = await own.order(order_id)
        await assert_only_planned_task_failures(own, order.id, release.id)
        expected = ["ship", "cancel_lines"] if arrival == "ship_first" else ["cancel_lines", "ship"]
        assert signals(await events(own, release.id)) == expected  # pick, deliver: updates
        assert returns(view) == []
        assert (view["lines"][0]["shipped_quantity"], view["lines"][0]["cancelled_quantity"]) == (
            2,
            0,
        )
