"""A long backorder loop continues as new and the order carries on as if nothing happened.

A dev server of its own suggests continue-as-new after a few dozen history events
(`limit.historyCount.suggestContinueAsNew`), so one backorder loop with a 1 s retry timer
reaches it within seconds. The order must keep its lines, releases, reservations and
events across runs, its release children (abandoned, not terminated) must still reach it,
and every run's history must replay on the current code.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from api.app import init_app
from tests.conftest import start_dev_server
from tests.integration.conftest import WAIT_SECONDS, Stack, order_body, unique_sku
from workers.main import WORKFLOWS, build_worker
from workflows.order import order_workflow_id

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
RECORD = os.environ.get("OMS_RECORD_HISTORIES") == "1"
# well past what an order needs up to its first release (about 50 events), so the
# suggestion comes inside the backorder loop
SUGGEST_AFTER_EVENTS = 100


@pytest.fixture(scope="module")
async def eager_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}")
    try:
        yield env
    finally:
        await env.shutdown()


async def runs_of(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow, first to newest, following the continue-as-new chain."""
    described = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = described.raw_description.workflow_execution_info.first_run_id or None
    histories: list[WorkflowHistory] = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


async def test_backorder_loop_continues_as_new_and_the_order_carries_on(
    stack: Stack, eager_server: WorkflowEnvironment
) -> None:
    client = eager_server.client
    settings = replace(stack.settings, task_queue=f"oms-can-{uuid.uuid4().hex[:8]}")
    http = TestClient(TestServer(init_app(settings, store=stack.store, client=client)))
    await http.start_server()
    own = Stack(
        http=http, store=stack.store, client=client, settings=settings, backend=stack.backend
    )
    try:
        async with build_worker(client, stack.store, settings):
            channel = await own.make_channel(
                "can", backorder_retry_seconds=1, backorder_max_attempts=1000
            )
            sku = unique_sku()
            await own.set_stock([("WH-BERLIN", sku, 2)])
            order_id = await own.create_order(
                order_body(channel=channel, sku=sku, quantity=2), key="ops"
            )
            first = await own.current_shipment(order_id, "WH-BERLIN")
            status, body = await own.call(
                "POST",
                f"/v1/shipments/{first}/pick",
                key="WH-BERLIN",
                json={"lines": [{"line_id": "1", "picked_quantity": 0}]},
            )
            assert status == 200, body

            # no location has the SKU now: the order retries every second until the
            # server suggests a new history, and continues as new mid-loop
            handle = client.get_workflow_handle(order_workflow_id(order_id))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_SECONDS * 2
            while True:
                described = await handle.describe()
                info = described.raw_description.workflow_execution_info
                if info.first_run_id and described.run_id != info.first_run_id:
                    break
                assert loop.time() < deadline, "the order never continued as new"
                await asyncio.sleep(0.2)
            view = await own.wait_for(
                order_id,
                lambda v: (
                    any(e["type"] == "continued_as_new" for e in v["events"])
                    and v["lines"][0]["status"] == "BACKORDERED"
                ),
                "the new run answering, the line backordered",
            )
            first_seq = {}
            for event in view["events"]:
                first_seq.setdefault(event["type"], event["seq"])
            assert first_seq["shipment_picked"] < first_seq["continued_as_new"], (
                "continued as new before the backorder loop"
            )
            assert view["status"] == "IN_FULFILLMENT"
            assert [r["release_key"] for r in view["releases"]] == [f"{order_id}-R1"]

            # stock arrives: the new run routes, releases and delivers
            await own.set_stock([("WH-MUNICH", sku, 2)])
            second = await own.current_shipment(order_id, "WH-MUNICH")
            await own.fulfil(second, "WH-MUNICH", {"1": 2})
            view = await own.wait_status(order_id, "DELIVERED")
            line = view["lines"][0]
            assert (line["shipped_quantity"], line["cancelled_quantity"]) == (2, 0)
            assert sum(r["status_quantity"] for r in view["releases"]) == 1
            assert view["returns"] == []
            reservations = await stack.store.inventory.reservations_for_order(order_id)
            assert {r.status for r in reservations if r.quantity} == {"CONSUMED"}
            assert sum(r.quantity for r in reservations if r.status == "CONSUMED") == 2

            histories = await runs_of(client, order_workflow_id(order_id))
            assert len(histories) >= 2
            replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
            for number, history in enumerate(histories, start=1):
                await replayer.replay_workflow(history)
                if RECORD and stack.backend == "sqlite" and number <= 2:
                    path = HISTORIES / f"continue_as_new_order_run{number}.json"
                    path.write_text(history.to_json())
    finally:
        await http.close()
