"""Reservation reconciliation: an order whose workflow was terminated gets its stock back
through the `oms-reconcile-reservations` schedule; running orders are left alone.

Real dev server, real worker, real HTTP, both databases (the `stack` fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.reconcile import ReconcileActivities
from store.reconcile import ReconcileRepository
from tests.integration.conftest import WAIT_SECONDS, Stack, order_body, unique_sku
from workers.main import serve
from workers.schedules import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule
from workflows.fulfillment import FulfillmentWorkflow
from workflows.model import FulfillmentInput, FulfillmentLine
from workflows.reconcile import ReconcileReservationsWorkflow
from workflows.reconcile_model import (
    ReconcileCursor,
    ReconcileInput,
    ReconcilePageInput,
    ReconcilePageResult,
    ReconcileReport,
)

EVENT = "reservations_reconciled"


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy, failing after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} not reached in {WAIT_SECONDS}s (last: {last!r})")


async def reconcile(stack: Stack, input: ReconcileInput | None = None) -> ReconcileReport:
    """One run of the reconciliation workflow on the stack's task queue."""
    return await stack.client.execute_workflow(
        ReconcileReservationsWorkflow.run,
        input or ReconcileInput(),
        id=f"reconcile-test-{uuid.uuid4().hex[:10]}",
        task_queue=stack.settings.task_queue,
        execution_timeout=timedelta(seconds=WAIT_SECONDS),
    )


async def reconciled_events(stack: Stack, order_id: str) -> list[str]:
    return [
        detail for _, _, kind, detail in await stack.store.orders.events(order_id) if kind == EVENT
    ]


async def reservation_statuses(stack: Stack, order_id: str) -> list[str]:
    return [r.status for r in await stack.store.inventory.reservations_for_order(order_id)]


async def reserved(stack: Stack, sku: str) -> dict[str, int]:
    return {r.location_id: r.reserved for r in await stack.store.inventory.stock([sku])}


async def work_order_keys(stack: Stack, location_id: str) -> list[str]:
    """The location's open work orders (cancelled ones are listed too, as CANCELLED)."""
    status, body = await stack.call(
        "GET",
        f"/v1/locations/{location_id}/work-orders?status=OPEN,PICKED,SHIPPED",
        key=location_id,
    )
    assert status == 200, body
    return [w["shipment_key"] for w in body["work_orders"]]


async def shipment_status(stack: Stack, shipment_key: str) -> str:
    status, body = await stack.call("GET", f"/v1/shipments/{shipment_key}", key="ops")
    assert status == 200, body
    return str(body["status"])


async def terminate(stack: Stack, order_id: str) -> None:
    """What an engineer does in the Temporal UI."""
    await stack.client.get_workflow_handle(f"order-{order_id}").terminate(
        reason="terminated by an operator (test)"
    )


async def scheduled_report(stack: Stack, handle: ScheduleHandle) -> ReconcileReport:
    """The report of the schedule's most recent run, once it has finished."""

    async def started() -> str | None:
        actions = (await handle.describe()).info.recent_actions
        if not actions:
            return None
        action = actions[-1].action
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        return action.workflow_id

    workflow_id = await eventually(started, "a run started by the schedule")
    run = stack.client.get_workflow_handle_for(ReconcileReservationsWorkflow.run, workflow_id)
    return await asyncio.wait_for(run.result(), WAIT_SECONDS)


async def test_schedule_is_created_once_and_follows_the_interval_setting(stack: Stack) -> None:
    assert RECONCILE_SCHEDULE_ID == "oms-reconcile-reservations"
    assert stack.settings.reconcile_interval_seconds == 300  # the default
    # an id of this test's own: the dev server is shared by both database runs
    schedule_id = f"{RECONCILE_SCHEDULE_ID}-{uuid.uuid4().hex[:8]}"
    handle = await ensure_reconcile_schedule(stack.client, stack.settings, schedule_id=schedule_id)
    try:
        schedule = (await handle.describe()).schedule
        assert [i.every for i in schedule.spec.intervals] == [timedelta(seconds=300)]
        assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "ReconcileReservationsWorkflow"
        assert action.task_queue == stack.settings.task_queue

        # a worker starting later with another interval: no failure, the interval follows
        faster = replace(stack.settings, reconcile_interval_seconds=120)
        again = await ensure_reconcile_schedule(stack.client, faster, schedule_id=schedule_id)
        assert again.id == schedule_id
        schedule = (await handle.describe()).schedule
        assert [i.every for i in schedule.spec.intervals] == [timedelta(seconds=120)]
        assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    finally:
        await handle.delete()


async def test_terminated_order_in_fulfillment_gets_its_stock_back_from_the_schedule(
    stack: Stack,
) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 10)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    assert await stack.atp(sku) == {"WH-BERLIN": 8}
    assert await reservation_statuses(stack, order_id) == ["ACTIVE"]
    assert key in await work_order_keys(stack, "WH-BERLIN")

    await terminate(stack, order_id)
    schedule_id = f"{RECONCILE_SCHEDULE_ID}-{uuid.uuid4().hex[:8]}"
    handle = await ensure_reconcile_schedule(stack.client, stack.settings, schedule_id=schedule_id)
    try:
        await handle.trigger()
        report = await scheduled_report(stack, handle)
    finally:
        await handle.delete()
    assert report.orders_closed >= 1 and not report.errors, report
    # released here (release workflow closed with its order) or by the release workflow
    # (still running, abandoned by its order): either way the stock comes back
    assert report.reservations_released + report.releases_cancelled >= 1, report

    async def stock_back() -> bool:
        return await stack.atp(sku) == {"WH-BERLIN": 10}

    await eventually(stock_back, "the stock back in the availability API")
    assert await reserved(stack, sku) == {"WH-BERLIN": 0}
    assert await reservation_statuses(stack, order_id) == ["RELEASED"]

    async def work_order_gone() -> bool:
        return key not in await work_order_keys(stack, "WH-BERLIN")

    await eventually(work_order_gone, "the shipment gone from the location's work orders")
    assert await shipment_status(stack, key) == "CANCELLED"
    release = stack.client.get_workflow_handle(f"order-{order_id}-release-1")

    async def release_closed() -> bool:
        return (await release.describe()).status != WorkflowExecutionStatus.RUNNING

    await eventually(release_closed, "the release workflow closed")
    [detail] = await eventually(
        lambda: reconciled_events(stack, order_id), "a reservations_reconciled event"
    )
    assert f"order-{order_id}" in detail and "TERMINATED" in detail, detail


async def test_terminated_order_awaiting_approval_is_reconciled_once(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 3)])
    order_id = await stack.create_order(order_body(channel="b2b", sku=sku, quantity=3))
    view = await stack.wait_status(order_id, "AWAITING_APPROVAL")
    assert view["lines"][0]["status"] == "SCHEDULED"
    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 0}
    [reservation] = await stack.store.inventory.reservations_for_order(order_id)
    assert reservation.status == "ACTIVE"

    await terminate(stack, order_id)
    # two runs at once (a manual start beside the scheduled one): the units come back once
    first, second = await asyncio.gather(reconcile(stack), reconcile(stack))
    assert not first.errors and not second.errors, (first, second)
    assert first.reservations_released + second.reservations_released >= 1

    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 3}
    assert await reserved(stack, sku) == {"WH-BERLIN": 0}
    assert await reservation_statuses(stack, order_id) == ["RELEASED"]
    [detail] = await reconciled_events(stack, order_id)
    assert reservation.reservation_id in detail and "TERMINATED" in detail, detail

    # and once more later, one order per page: nothing left to do, nothing written,
    # every order holding stock checked exactly once
    holding = await ReconcileRepository(stack.store.db).holding_orders(limit=5000)
    later = await reconcile(stack, ReconcileInput(page_size=1, max_pages=1000))
    assert not later.errors, later
    assert later.orders_checked == len(holding) and later.orders_closed == 0, later
    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 3}
    assert await reserved(stack, sku) == {"WH-BERLIN": 0}
    assert len(await reconciled_events(stack, order_id)) == 1
    # the reconciler's event is numbered apart from the workflow's own events
    seqs = {kind: seq for seq, _, kind, _ in await stack.store.orders.events(order_id)}
    assert seqs[EVENT] > max(s for k, s in seqs.items() if k != EVENT)


async def test_running_order_is_left_alone(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    key = await stack.current_shipment(order_id, "WH-BERLIN")

    report = await reconcile(stack)
    assert report.orders_checked >= 1 and not report.errors, report
    assert await reservation_statuses(stack, order_id) == ["ACTIVE"]
    assert await stack.atp(sku) == {"WH-BERLIN": 3}
    assert await reserved(stack, sku) == {"WH-BERLIN": 2}
    assert key in await work_order_keys(stack, "WH-BERLIN")
    assert await reconciled_events(stack, order_id) == []

    # and it carries on as usual
    await stack.fulfil(key, "WH-BERLIN", {"1": 2})
    await stack.wait_status(order_id, "DELIVERED")
    assert await reservation_statuses(stack, order_id) == ["CONSUMED"]


async def test_release_still_running_after_its_order_closed_cancels_it_itself(
    stack: Stack,
) -> None:
    """A release workflow abandoned by its order (parent close policy ABANDON) is asked
    to cancel: it releases its reservation and stops the location's work the normal way."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 4)])
    order_id = await stack.create_order(order_body(channel="b2b", sku=sku, quantity=4))
    await stack.wait_status(order_id, "AWAITING_APPROVAL")
    [reservation] = await stack.store.inventory.reservations_for_order(order_id)
    await terminate(stack, order_id)
    # the release the order would have started, left running without its order
    release = await stack.client.start_workflow(
        FulfillmentWorkflow.run,
        FulfillmentInput(
            order_id=order_id,
            location_id="WH-BERLIN",
            release_key=f"{order_id}-R1",
            shipment_key=f"{order_id}-S1",
            work_order_id=f"{order_id}-WO1",
            lines=[
                FulfillmentLine(
                    line_id="1", sku=sku, quantity=4, reservation_id=reservation.reservation_id
                )
            ],
        ),
        id=f"order-{order_id}-release-1",
        task_queue=stack.settings.task_queue,
    )

    async def released_to_location() -> bool:
        return f"{order_id}-S1" in await work_order_keys(stack, "WH-BERLIN")

    await eventually(released_to_location, "the release's shipment at the location")

    report = await reconcile(stack)
    assert not report.errors, report
    assert report.releases_cancelled >= 1, report
    result = await asyncio.wait_for(release.result(), WAIT_SECONDS)
    assert result.cancelled

    assert await stack.atp(sku, channel="b2b") == {"WH-BERLIN": 4}
    assert await reserved(stack, sku) == {"WH-BERLIN": 0}
    assert await reservation_statuses(stack, order_id) == ["RELEASED"]
    assert await shipment_status(stack, f"{order_id}-S1") == "CANCELLED"
    assert f"{order_id}-S1" not in await work_order_keys(stack, "WH-BERLIN")
    [detail] = await reconciled_events(stack, order_id)
    assert f"order-{order_id}-release-1" in detail, detail


async def test_picked_units_of_a_closed_order_and_release_go_back(stack: Stack) -> None:
    """Order and release both gone (the default parent close policy terminates the
    release with its order): the reconciler cancels the open shipment and work order in
    the store and releases the picked units itself."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 6)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    key = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{key}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 2}]},
    )
    assert status == 200, body
    assert await reservation_statuses(stack, order_id) == ["PICKED"]
    assert await shipment_status(stack, key) == "PICKED"

    await terminate(stack, order_id)
    release = stack.client.get_workflow_handle(f"order-{order_id}-release-1")
    if (await release.describe()).status == WorkflowExecutionStatus.RUNNING:
        await release.terminate(reason="terminated by an operator (test)")

    report = await reconcile(stack)
    assert not report.errors, report
    assert report.reservations_released >= 1, report
    assert await stack.atp(sku) == {"WH-BERLIN": 6}
    assert await reserved(stack, sku) == {"WH-BERLIN": 0}
    assert await reservation_statuses(stack, order_id) == ["RELEASED"]
    assert await shipment_status(stack, key) == "CANCELLED"
    assert key not in await work_order_keys(stack, "WH-BERLIN")
    [detail] = await reconciled_events(stack, order_id)
    assert f"cancelled shipment {key}" in detail and "was PICKED" in detail, detail


async def test_a_retried_page_carries_on_after_its_last_heartbeat(stack: Stack) -> None:
    skus = [unique_sku(), unique_sku()]
    await stack.set_stock([("WH-BERLIN", sku, 1) for sku in skus])
    order_ids = []
    for sku in skus:  # one after the other: the first holds the older reservation
        order_ids.append(await stack.create_order(order_body(sku=sku, quantity=1)))
        await stack.wait_status(order_ids[-1], "IN_FULFILLMENT")
        await stack.current_shipment(order_ids[-1], "WH-BERLIN")  # its release started
    for order_id in order_ids:
        await terminate(stack, order_id)
        release = stack.client.get_workflow_handle(f"order-{order_id}-release-1")
        if (await release.describe()).status == WorkflowExecutionStatus.RUNNING:
            await release.terminate(reason="terminated by an operator (test)")
    holding = await ReconcileRepository(stack.store.db).holding_orders(limit=5000)
    first = next(o for o in holding if o.order_id == order_ids[0])
    assert [o.order_id for o in holding].index(order_ids[0]) < [o.order_id for o in holding].index(
        order_ids[1]
    )

    # attempt 2 of a page whose attempt 1 heartbeat after finishing the first order
    done = ReconcilePageResult(
        report=ReconcileReport(orders_checked=7),
        next=ReconcileCursor(first_reserved_at=first.first_reserved_at, order_id=first.order_id),
    )
    env = ActivityEnvironment(client=stack.client)
    env.info = replace(env.info, attempt=2, heartbeat_details=[done.model_dump(mode="json")])
    activity = ReconcileActivities(stack.store)
    result = await env.run(activity.reconcile_reservations, ReconcilePageInput(limit=5000))
    assert not result.report.errors, result
    assert result.report.orders_checked > 7  # counted on from the heartbeat
    assert result.next is None
    # the order the first attempt had finished is not looked at again
    assert await reservation_statuses(stack, order_ids[0]) == ["ACTIVE"]
    assert await reservation_statuses(stack, order_ids[1]) == ["RELEASED"]
    assert await stack.atp(skus[1]) == {"WH-BERLIN": 1}

    # the next run picks the first one up as well
    report = await reconcile(stack)
    assert not report.errors, report
    assert await reservation_statuses(stack, order_ids[0]) == ["RELEASED"]
    assert await stack.atp(skus[0]) == {"WH-BERLIN": 1}


async def test_worker_start_creates_the_schedule(stack: Stack) -> None:
    """What `make dev` and `oms-worker` run: the worker's start puts the schedule in
    place on its task queue."""
    settings = replace(
        stack.settings,
        temporal_address=stack.client.service_client.config.target_host,
        task_queue=f"oms-test-{uuid.uuid4().hex[:8]}",
    )
    handle = stack.client.get_schedule_handle(RECONCILE_SCHEDULE_ID)

    async def schedule() -> Schedule | None:
        """The schedule once it points at this worker's task queue (another test's worker
        may have put it in place before, on its own queue)."""
        try:
            found = (await handle.describe()).schedule
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        action = found.action
        if isinstance(action, ScheduleActionStartWorkflow) and (
            action.task_queue != settings.task_queue
        ):
            return None
        return found

    stop = asyncio.Event()
    worker = asyncio.create_task(serve(settings, stop))
    try:
        found: Schedule = await eventually(schedule, "the schedule oms-reconcile-reservations")
        action = found.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.task_queue == settings.task_queue
        assert [i.every for i in found.spec.intervals] == [timedelta(seconds=300)]
    finally:
        stop.set()
        await asyncio.wait_for(worker, WAIT_SECONDS)
        await handle.delete()


async def test_completed_order_after_a_pick_that_found_nothing_is_not_touched(
    stack: Stack,
) -> None:
    """A pick of 0 leaves its reservation PICKED with 0 units; the order goes on to
    another location and completes. Nothing is held, so nothing is reconciled."""
    channel = await stack.make_channel("rc", return_window_days=0)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 5)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=2), key="ops")
    first = await stack.current_shipment(order_id, "WH-BERLIN")
    status, body = await stack.call(
        "POST",
        f"/v1/shipments/{first}/pick",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
    )
    assert status == 200, body
    second = await stack.current_shipment(order_id, "WH-MUNICH")
    await stack.fulfil(second, "WH-MUNICH", {"1": 2})
    await stack.wait_status(order_id, "COMPLETED")
    workflow = stack.client.get_workflow_handle(f"order-{order_id}")

    async def closed() -> bool:
        return (await workflow.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(closed, "the order workflow completed")
    before = await stack.atp(sku)

    report = await reconcile(stack)
    assert not report.errors, report
    assert await reconciled_events(stack, order_id) == []
    assert await stack.atp(sku) == before
    assert await reserved(stack, sku) == {"WH-BERLIN": 0, "WH-MUNICH": 0}
