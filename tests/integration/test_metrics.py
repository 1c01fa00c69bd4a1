"""Metrics as Prometheus scrapes them: the API's /metrics (request latency by route
template, answers by error code, business gauges from the store), the Temporal SDK's
metrics of a worker whose runtime exports them, and the worker's own counters of failed
partner calls and stages on their endpoint."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from api.app import init_app
from store import Store
from store.database import Database
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually
from workers.client import connect
from workers.main import build_worker, metrics_runtime, serve_app_metrics
from workers.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 when absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def scrape_api(http: TestClient[Any, Any]) -> Samples:
    resp = await http.get("/metrics")  # public, like a Prometheus scraper calls it
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return parse(await resp.text())


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return parse(await resp.text())


async def test_the_api_shows_latency_by_route_and_the_orders_moving(stack: Stack) -> None:
    before = await scrape_api(stack.http)
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await stack.current_shipment(order_id, "WH-BERLIN")
    view = await stack.order(order_id)
    status, body = await stack.call("GET", f"/v1/orders/NOPE-{uuid.uuid4().hex[:8]}")
    assert status == 404, body
    held_id = await stack.create_order(
        order_body(
            sku=sku,
            payment={"method": "card", "amount": "39.98", "currency": "EUR", "authorized": False},
        )
    )
    await stack.wait_status(held_id, "ON_HOLD")

    after = await scrape_api(stack.http)
    created = {"method": "POST", "route": "/v1/orders", "status": "201"}
    assert (
        value(after, "oms_http_request_duration_seconds_count", **created)
        >= value(before, "oms_http_request_duration_seconds_count", **created) + 2
    )
    assert value(after, "oms_http_request_duration_seconds_bucket", **created, le="+Inf") >= 2
    assert value(after, "oms_http_responses_total", **created, code="none") >= 2
    # the route template, never the order id, and the error code of an error answer
    read = {"method": "GET", "route": "/v1/orders/{order_id}"}
    assert value(after, "oms_http_request_duration_seconds_count", **read, status="200") >= 1
    assert (
        value(after, "oms_http_responses_total", **read, status="404", code="order_not_found") >= 1
    )
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not any(order_id in route or "NOPE-" in route for route in routes), routes

    # business gauges: read from the store on this scrape
    assert value(after, "oms_store_up") == 1
    for status in {view["status"], "ON_HOLD"}:
        assert value(after, "oms_orders", status=status) >= (
            value(before, "oms_orders", status=status) + 1
        ), status
    assert value(after, "oms_orders_held", reason="validation") >= (
        value(before, "oms_orders_held", reason="validation") + 1
    )
    assert value(after, "oms_work_orders", status="OPEN") >= (
        value(before, "oms_work_orders", status="OPEN") + 1
    )
    for gauge in ("oms_approvals_pending", "oms_backorder_lines_waiting"):
        assert gauge in names(after), gauge


async def test_an_unreachable_store_still_answers_with_store_up_zero(
    stack: Stack, tmp_path: Any
) -> None:
    # a store on a database nobody can open (a directory is no SQLite file)
    broken = Store(Database(f"sqlite+aiosqlite:///{tmp_path}"))
    app = init_app(stack.settings, store=broken, client=stack.client)
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        await scrape_api(http)
        samples = await scrape_api(http)
    finally:
        await http.close()
        await broken.close()
    assert value(samples, "oms_store_up") == 0
    assert "oms_orders" not in names(samples)
    # the request metrics are there (a scrape is counted once it was answered)
    scrapes = {"method": "GET", "route": "/metrics", "status": "200"}
    assert value(samples, "oms_http_request_duration_seconds_count", **scrapes) == 1


@pytest.fixture
async def sdk_metrics(stack: Stack) -> AsyncIterator[tuple[Stack, str]]:
    """An API and a worker on their own task queue, the worker's client on a runtime
    that exports the SDK's metrics on a free port (as workers/main.py serve() does)."""
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    settings = replace(stack.settings, task_queue=f"oms-metrics-{uuid.uuid4().hex[:8]}")
    target = stack.client.service_client.config.target_host
    client = await connect(replace(settings, temporal_address=target), runtime=runtime)
    http = TestClient(TestServer(init_app(settings, store=stack.store, client=stack.client)))
    await http.start_server()
    own = replace(stack, http=http, settings=settings)
    try:
        async with build_worker(client, stack.store, settings):
            yield own, f"http://127.0.0.1:{port}/metrics"
    finally:
        await http.close()


async def test_the_worker_exports_the_temporal_sdk_metrics(
    sdk_metrics: tuple[Stack, str],
) -> None:
    own, url = sdk_metrics
    sku = unique_sku()
    await own.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await own.create_order(order_body(sku=sku, quantity=1))
    await own.current_shipment(order_id, "WH-BERLIN")

    async def exported() -> Samples | None:
        samples = await scrape(url)
        wanted = {
            "temporal_workflow_task_schedule_to_start_latency_bucket",
            "temporal_workflow_task_execution_latency_bucket",
            "temporal_activity_execution_latency_bucket",
            "temporal_activity_schedule_to_start_latency_bucket",
        }
        return samples if wanted <= names(samples) else None

    samples = await eventually(exported, "the SDK's workflow task and activity metrics")
    queues = {
        dict(labels).get("task_queue")
        for name, labels in samples
        if name == "temporal_activity_execution_latency_count"
    }
    assert own.settings.task_queue in queues, queues
    activities = {
        dict(labels).get("activity_type")
        for name, labels in samples
        if name == "temporal_activity_execution_latency_count"
    }
    assert {"validate_order", "route_order"} <= activities, activities


@pytest.fixture
async def failing_partner(stack: Stack) -> AsyncIterator[str]:
    """A location whose webhook answers 500; yields its id."""

    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"ok": False}, status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    location_id = f"WH-DOWN-{uuid.uuid4().hex[:6]}"
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Partner that is down",
                "lat": 48.14,
                "lon": 11.58,
                "webhook_url": str(server.make_url("/hook")),
            }
        ],
    )
    assert status == 200, body
    try:
        yield location_id
    finally:
        await server.close()


async def test_the_worker_counts_webhook_and_stage_failures(
    stack: Stack, failing_partner: str
) -> None:
    port = free_port()
    endpoint = serve_app_metrics(Settings(worker_app_metrics_address=f"127.0.0.1:{port}"))
    assert endpoint is not None
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        receiver = f"location:{failing_partner}"
        before = await scrape(url)
        sku = unique_sku()
        await stack.set_stock([(failing_partner, sku, 2)])
        order_id = await stack.create_order(order_body(sku=sku, quantity=2))

        async def counted() -> Samples | None:
            samples = await scrape(url)
            failures = value(
                samples, "oms_webhook_failures_total", receiver=receiver, kind="unavailable"
            )
            return samples if failures >= 1 else None

        after = await eventually(counted, "the partner's failure counted")
        stage = {"stage": "submission", "kind": "technical"}
        failed = sum(
            v
            for (name, labels), v in after.items()
            if name == "oms_stage_failures_total" and stage.items() <= dict(labels).items()
        )
        earlier = sum(
            v
            for (name, labels), v in before.items()
            if name == "oms_stage_failures_total" and stage.items() <= dict(labels).items()
        )
        assert failed >= earlier + 1
        status, body = await stack.call(
            "POST", f"/v1/orders/{order_id}/cancel", key="web", json={"reason": "partner down"}
        )
        assert status == 200, body
        await stack.wait_status(order_id, "CANCELLED")
    finally:
        endpoint.shutdown()
        endpoint.server_close()


def test_a_malformed_metrics_address_refuses_the_worker_and_empty_turns_it_off() -> None:
    bad = Settings(worker_metrics_address="9464")
    assert any("OMS_WORKER_METRICS_ADDRESS" in p for p in bad.refusals(api=False))
    bad = Settings(worker_app_metrics_address="localhost:http")
    assert any("OMS_WORKER_APP_METRICS_ADDRESS" in p for p in bad.refusals(api=False))
    off = Settings(worker_metrics_address="", worker_app_metrics_address="")
    assert off.refusals(api=False) == []
    assert metrics_runtime(off) is None and serve_app_metrics(off) is None


def test_a_taken_metrics_port_costs_the_metrics_not_the_worker() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = Settings(worker_metrics_address=address, worker_app_metrics_address=address)
        assert metrics_runtime(settings) is None
        assert serve_app_metrics(settings) is None
