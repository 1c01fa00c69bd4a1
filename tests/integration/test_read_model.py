"""Reads without the worker: GET /v1/orders/{id} answers from the store's projection.

The order view is read from what the workflow projected into the store, so it answers at
once while no worker runs, after the workflow is gone (terminated, past retention), and
with the whole audit trail from order_events (also what other components wrote there).
`?source=workflow` is the live `state` query for ops and admin, bounded in time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus

from store.orders import LineProjection
from store.reconcile import ReconcileRepository
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually, private_stack, wait_closed
from workflows.model import OrderView
from workflows.order import order_workflow_id

# a read of the store answers in milliseconds; this only tells an answer from a hang
# (today's query without a worker hangs for ~29 s)
READ_BOUND_SECONDS = 5.0


async def timed_get(own: Stack, path: str, key: str = "ops") -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = await own.call("GET", path, key=key)
    return status, body, time.monotonic() - started


def without_events(view: dict[str, Any]) -> dict[str, Any]:
    # channel_order_id: the API adds the channel's own id to either answer
    return {k: v for k, v in view.items() if k not in ("events", "channel_order_id")}


async def test_order_view_answers_without_a_worker_and_matches_the_workflow(
    stack: Stack,
) -> None:
    async with private_stack(stack) as own:
        sku = unique_sku()
        await own.set_stock([("WH-BERLIN", sku, 5)])
        order_id = await own.create_order(order_body(sku=sku, quantity=2))

        # no worker has ever run this order: the row and its lines, status CREATED
        status, view, took = await timed_get(own, f"/v1/orders/{order_id}")
        assert took < READ_BOUND_SECONDS, f"read took {took:.1f}s without a worker"
        assert status == 200, view
        assert view["order_id"] == order_id
        assert view["status"] == "CREATED"
        assert [
            (ln["line_id"], ln["sku"], ln["quantity"], ln["status"]) for ln in view["lines"]
        ] == [("1", sku, 2, "CREATED")]
        assert Decimal(view["total"]) == Decimal("39.98")
        # the same shape as the workflow's own view
        OrderView.model_validate(view)

        async with own.worker():
            await own.wait_status(order_id, "IN_FULFILLMENT")
            shipment_key = await own.current_shipment(order_id, "WH-BERLIN")

        # the worker is gone: the order still reads at once, as far as it got
        status, view, took = await timed_get(own, f"/v1/orders/{order_id}")
        assert took < READ_BOUND_SECONDS, f"read took {took:.1f}s without a worker"
        assert status == 200, view
        assert view["status"] == "IN_FULFILLMENT"
        assert view["lines"][0]["status"] == "RELEASED"
        assert view["lines"][0]["location_id"] == "WH-BERLIN"
        assert view["routing"] and view["routing"][0]["location_id"] == "WH-BERLIN"
        assert [(s["shipment_key"], s["location_id"]) for s in view["shipments"]] == [
            (shipment_key, "WH-BERLIN")
        ]
        assert "status_in_fulfillment" in [e["type"] for e in view["events"]]
        # the web shop reads its own order the same way
        status, mine, took = await timed_get(own, f"/v1/orders/{order_id}", key="web")
        assert (status, took < READ_BOUND_SECONDS) == (200, True), mine
        assert mine == view

        # the lists need no worker either
        status, listed, took = await timed_get(own, "/v1/orders?status=IN_FULFILLMENT&limit=500")
        assert (status, took < READ_BOUND_SECONDS) == (200, True), listed
        assert order_id in [o["order_id"] for o in listed["orders"]]
        status, approvals, took = await timed_get(own, "/v1/approvals")
        assert (status, took < READ_BOUND_SECONDS) == (200, True), approvals

        # the live query says within its bound that nobody can answer it
        status, body, took = await timed_get(own, f"/v1/orders/{order_id}?source=workflow")
        assert took < 15, f"the live query took {took:.1f}s"
        assert status == 503, body
        assert body["error"]["code"] == "no_worker"

        async with own.worker():
            # the store's view is the workflow's own state query (the workflow keeps
            # fewer events than the store, never others)
            handle = own.client.get_workflow_handle(order_workflow_id(order_id))

            async def agreed() -> tuple[dict[str, Any], dict[str, Any]] | None:
                live = (await handle.query("state", result_type=OrderView)).model_dump(mode="json")
                status, stored = await own.call("GET", f"/v1/orders/{order_id}", key="ops")
                assert status == 200, stored
                return (live, stored) if without_events(live) == without_events(stored) else None

            live, stored = await eventually(agreed, "the store's view equals the state query")
            live_events = {e["seq"]: e for e in live["events"]}
            stored_events = {e["seq"]: e for e in stored["events"]}
            assert live_events.items() <= stored_events.items()
            assert [e["seq"] for e in stored["events"]] == sorted(stored_events)

            # ops read the live query through the API too
            async def live_answer() -> dict[str, Any] | None:
                status, body = await own.call(
                    "GET", f"/v1/orders/{order_id}?source=workflow", key="ops"
                )
                return dict(body) if status == 200 else None

            answered = await eventually(live_answer, "the live query answers")
            assert without_events(answered) == without_events(stored)

            status, body = await own.call(
                "POST", f"/v1/orders/{order_id}/cancel", key="web", json={}
            )
            assert status == 200, body
            await own.wait_status(order_id, "CANCELLED")
            await wait_closed(own, handle.id)


async def test_order_view_access_rules(stack: Stack) -> None:
    order_id = await stack.create_order(order_body(sku=unique_sku(), quantity=1))
    await stack.wait_for(order_id, lambda v: v["status"] != "CREATED", "a projection")
    # another channel's web shop does not learn the order exists
    status, body = await stack.call("GET", f"/v1/orders/{order_id}", key="b2b")
    assert (status, body["error"]["code"]) == (404, "order_not_found")
    # the live query is for ops and admin
    status, body = await stack.call("GET", f"/v1/orders/{order_id}?source=workflow", key="web")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await stack.call("GET", f"/v1/orders/{order_id}?source=nowhere", key="web")
    assert (status, body["error"]["code"]) == (400, "invalid_query")
    status, body = await stack.call("GET", "/v1/orders/NO-SUCH-ORDER", key="ops")
    assert (status, body["error"]["code"]) == (404, "order_not_found")
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/cancel", key="web", json={})
    assert status == 200, body
    await stack.wait_status(order_id, "CANCELLED")


async def test_events_other_components_wrote_are_in_the_order_view(stack: Stack) -> None:
    order_id = await stack.create_order(order_body(sku=unique_sku(), quantity=1))
    # no stock anywhere: the order waits in NOT_ANNOUNCED
    await stack.wait_status(order_id, "NOT_ANNOUNCED")
    reconciler = ReconcileRepository(stack.store.db)
    written = await reconciler.append_event(
        order_id,
        datetime.now(UTC),
        "reservations_reconciled",
        "released 1 x SKU at WH-BERLIN: the order's workflow had ended",
    )
    assert written
    view = await stack.order(order_id)
    kinds = [e["type"] for e in view["events"]]
    assert "reservations_reconciled" in kinds
    # the workflow's own events are all there, before it (time order)
    assert kinds.index("status_not_announced") < kinds.index("reservations_reconciled")
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/cancel", key="web", json={})
    assert status == 200, body
    view = await stack.wait_status(order_id, "CANCELLED")
    assert "reservations_reconciled" in [e["type"] for e in view["events"]]


async def test_a_terminated_order_still_reads_without_its_workflow(stack: Stack) -> None:
    """The workflow is terminated, its history deletion asked for (what retention does)
    and no worker runs: the view answers from the store as the workflow last projected
    it."""
    async with private_stack(stack) as own:
        order_id = await own.create_order(order_body(sku=unique_sku(), quantity=1))
        handle = own.client.get_workflow_handle(order_workflow_id(order_id))
        async with own.worker():
            before = await own.wait_status(order_id, "NOT_ANNOUNCED")
            await handle.terminate(reason="test: the workflow is gone")
            assert await wait_closed(own, handle.id) == WorkflowExecutionStatus.TERMINATED
        await own.client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=own.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
            )
        )
        status, view, took = await timed_get(own, f"/v1/orders/{order_id}")
        assert took < READ_BOUND_SECONDS, f"read took {took:.1f}s without the workflow"
        assert status == 200, view
        assert view["status"] == "NOT_ANNOUNCED"
        assert without_events(view) == without_events(before)
        assert [e["seq"] for e in view["events"]] == [e["seq"] for e in before["events"]]
        # the web shop that placed it reads it too
        status, mine = await own.call("GET", f"/v1/orders/{order_id}", key="web")
        assert (status, mine) == (200, view)
        # the live query cannot answer: no worker, or no history left
        status, body, took = await timed_get(own, f"/v1/orders/{order_id}?source=workflow")
        assert took < 15, f"the live query took {took:.1f}s"
        assert (status, body["error"]["code"]) in (
            (503, "no_worker"),
            (404, "workflow_not_found"),
        ), body


async def test_a_late_projection_never_overwrites_a_newer_one(stack: Stack) -> None:
    """A retried or late projection attempt of an older state leaves the newer one."""
    order_id = await stack.create_order(order_body(sku=unique_sku(), quantity=1))
    view = OrderView.model_validate(await stack.wait_status(order_id, "NOT_ANNOUNCED"))
    status, body = await stack.call("POST", f"/v1/orders/{order_id}/cancel", key="web", json={})
    assert status == 200, body
    final = await stack.wait_status(order_id, "CANCELLED")
    await wait_closed(stack, order_workflow_id(order_id))
    top = max(e["seq"] for e in final["events"] if e["seq"] < 1_000_000_000)

    # the NOT_ANNOUNCED projection arrives again, late
    older = view.model_copy(update={"updated_at": view.updated_at - timedelta(seconds=1)})
    await stack.store.orders.project(
        order_id=order_id,
        status=older.status.value,
        updated_at=older.updated_at,
        lines=[
            LineProjection(ln.line_id, ln.status.value, ln.location_id, ln.planned_ship_date)
            for ln in older.lines
        ],
        events=[],
        view=older.model_dump_json(exclude={"events"}),
        view_seq=top - 1,
    )
    assert await stack.order(order_id) == final
    row = await stack.store.orders.get(order_id)
    assert row is not None and row.status == "CANCELLED"
    assert [ln.status for ln in await stack.store.orders.lines(order_id)] == ["CANCELLED"]

    # a projection at the same point (a retry of the last attempt) still lands
    await stack.store.orders.project(
        order_id=order_id,
        status="CANCELLED",
        updated_at=datetime.fromisoformat(final["updated_at"]),
        lines=[],
        events=[],
        view=OrderView.model_validate(final).model_dump_json(exclude={"events"}),
        view_seq=top,
    )
    assert await stack.order(order_id) == final
