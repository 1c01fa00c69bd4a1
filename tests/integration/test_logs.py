"""Structured logs from a running worker (issue 12, point 3): with OMS_LOG_FORMAT=json, a
line a workflow logs is one JSON object carrying its order id, workflow id and run id. The
order is held by a web shop whose callback answers 404, which the order workflow logs as a
warning ("order stage response: ...")."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from temporalio import activity, workflow

from oms import logs
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually
from workflows.order import order_workflow_id


@pytest.fixture
async def refusing_shop() -> AsyncIterator[str]:
    """A web shop's order-response endpoint answering 404; yields its URL."""

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": "no such endpoint"}, status=404)

    app = web.Application()
    app.router.add_post("/oms/callback", callback)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/oms/callback"))
    finally:
        await server.close()


@pytest.fixture
def json_log(stack: Stack) -> Iterator[io.StringIO]:
    """This process's logs set up as the worker's main() does with OMS_LOG_FORMAT=json,
    written to a string; the previous set-up is put back afterwards."""
    root = logging.getLogger()
    level = root.level
    flags = (workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message)
    out = io.StringIO()
    handler = logs.configure(replace(stack.settings, log_format="json"), stream=out)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message = flags


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, each parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in out.getvalue().splitlines() if line]


async def test_a_workflow_log_line_is_json_with_the_order_and_workflow_ids(
    stack: Stack, refusing_shop: str, json_log: io.StringIO
) -> None:
    channel = await stack.make_channel("logs", callback_url=refusing_shop)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1), key="ops")
    await stack.wait_status(order_id, "ON_HOLD")
    handle = stack.client.get_workflow_handle(order_workflow_id(order_id))
    run_id = (await handle.describe()).run_id

    async def stage_line() -> dict[str, Any] | None:
        return next(
            (
                line
                for line in parsed(json_log)
                if line.get("order_id") == order_id
                and line["message"].startswith("order stage response: ")
            ),
            None,
        )

    line = await eventually(stage_line, f"a JSON log line of order {order_id}'s workflow")
    assert line["level"] == "WARNING" and line["logger"] == "temporalio.workflow"
    assert line["workflow_id"] == order_workflow_id(order_id)
    assert line["workflow_type"] == "OrderWorkflow"
    assert line["run_id"] == run_id
    assert line["task_queue"] == stack.settings.task_queue
    assert "404" in line["message"]
    # the context is in the fields, not repeated in the message
    assert "workflow_id" not in line["message"]

    # the activity that got the 404 logs its failure with the activity's context
    failed = next(
        line
        for line in parsed(json_log)
        if line.get("order_id") == order_id and line["logger"] == "temporalio.activity"
    )
    assert failed["activity_type"] == "send_order_response" and failed["activity_id"]
    assert failed["workflow_id"] == order_workflow_id(order_id) and failed["run_id"] == run_id
    assert "404" in failed["exc_info"]


async def test_the_api_request_lines_carry_method_path_status_and_duration() -> None:
    """aiohttp's access log with the API's logger class (api/main.py): one JSON line per
    request, none for the probes and the metrics scrape."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger("test.logs.access")
    access.propagate = False
    access.setLevel(logging.INFO)
    access.addHandler(handler)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, status=202 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app)
    # as web.run_app in api/main.py passes them to its runner
    await server.start_server(access_log_class=logs.AccessLogger, access_log=access)
    try:
        session = aiohttp.ClientSession()
        async with session:
            for method, path in (
                ("GET", "/health"),
                ("GET", "/ready"),
                ("GET", "/metrics"),
                ("POST", "/v1/orders/A-1/resume?comment=x"),
            ):
                async with session.request(method, server.make_url(path)) as resp:
                    await resp.read()

        async def post_logged() -> bool | None:
            return any(line["method"] == "POST" for line in parsed(out)) or None

        await eventually(post_logged, "the POST request's access line")
    finally:
        await server.close()
        access.removeHandler(handler)
    (line,) = parsed(out)
    assert line["method"] == "POST" and line["path"] == "/v1/orders/A-1/resume"
    assert line["status"] == 202 and line["duration_ms"] >= 0
    assert line["logger"] == "test.logs.access" and line["level"] == "INFO"
