"""Traces (oms/tracing.py): one order's API request, workflow start, workflow, activities,
store queries and the webhook call to its location are one trace, each naming the order;
the location's webhook receives the trace context; with an OTLP endpoint configured the
spans reach a collector over HTTP; without one nothing is traced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from api.app import init_app
from oms import tracing
from oms.targets import LOOPBACK
from store import Store
from tests.integration.conftest import WAIT_SECONDS, Stack, order_body, unique_sku
from workers.client import connect
from workers.main import WORKFLOWS, build_worker
from workers.seed import seed_demo
from workers.settings import Settings


@dataclass
class Traced:
    stack: Stack
    spans: InMemorySpanExporter


@dataclass
class Receiver:
    """A location's webhook: keeps the trace context headers of what it was sent."""

    server: TestServer
    traceparents: list[str] = field(default_factory=list)


@pytest.fixture
async def traced(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Traced]:
    """An OMS (API, worker, SQLite store) built while tracing to memory is on."""
    exporter = InMemorySpanExporter()
    provider = tracing.new_provider("oms-test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.install(provider)
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('traced')) / 'oms.db'}"
    settings = Settings(
        database_url=url,
        task_queue=f"oms-traced-{uuid.uuid4().hex[:8]}",
        outgoing_allow=LOOPBACK,
        temporal_address=temporal_env.client.service_client.config.target_host,
    )
    try:
        store = await Store.open(url)
        await seed_demo(store)
        client = await connect(settings)
        http = TestClient(TestServer(init_app(settings, store=store, client=client)))
        await http.start_server()
        try:
            async with build_worker(client, store, settings):
                stack = Stack(
                    http=http, store=store, client=client, settings=settings, backend="sqlite"
                )
                yield Traced(stack=stack, spans=exporter)
        finally:
            await http.close()
            await store.close()
    finally:
        tracing.install(previous)
        provider.shutdown()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        found.traceparents.append(request.headers.get("traceparent", ""))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/work-orders", hook)
    found = Receiver(server=TestServer(app))
    await found.server.start_server()
    try:
        yield found
    finally:
        await found.server.close()


async def eventually(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"{what}: not reached in {WAIT_SECONDS}s")
        await asyncio.sleep(0.1)


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_one_order_is_one_trace_from_the_api_to_the_webhook(
    traced: Traced, receiver: Receiver
) -> None:
    stack = traced.stack
    location_id = f"WH-TRACED-{uuid.uuid4().hex[:6]}"
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Traced warehouse",
                "lat": 48.14,
                "lon": 11.58,
                "webhook_url": str(receiver.server.make_url("/work-orders")),
            }
        ],
    )
    assert status == 200, body
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 2)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    await eventually(lambda: receiver.traceparents, "the work order at the location's webhook")

    spans = list(traced.spans.get_finished_spans())
    api = [
        s
        for s in named(spans, "POST /v1/orders")
        if s.kind is SpanKind.SERVER and (s.attributes or {}).get("oms.order_id") == order_id
    ]
    assert len(api) == 1, [s.name for s in named(spans, "POST")]
    assert api[0].attributes is not None
    assert api[0].attributes["http.route"] == "/v1/orders"
    assert api[0].attributes["http.response.status_code"] == 201
    assert api[0].parent is None  # the caller sent no trace context: the order's trace starts here
    trace_id = api[0].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}

    assert "StartWorkflow:OrderWorkflow" in names, sorted(names)
    assert "RunWorkflow:OrderWorkflow" in names, sorted(names)
    activities = named(in_trace, "RunActivity:")
    assert {"RunActivity:validate_order", "RunActivity:submit_work_orders"} <= {
        s.name for s in activities
    }, sorted(names)
    temporal = named(in_trace, "StartWorkflow:") + named(in_trace, "RunWorkflow:OrderWorkflow")
    for span in temporal + activities:
        assert (span.attributes or {}).get("oms.order_id") == order_id, span.name

    webhook = [s for s in in_trace if s.kind is SpanKind.CLIENT and s.name == "POST"]
    assert len(webhook) == 1, sorted(names)
    assert webhook[0].attributes is not None
    assert webhook[0].attributes["oms.order_id"] == order_id
    assert webhook[0].attributes["oms.partner"] == location_id
    # the instrumentation's attribute names depend on OTEL_SEMCONV_STABILITY_OPT_IN
    answer = webhook[0].attributes.get("http.response.status_code")
    assert (answer or webhook[0].attributes.get("http.status_code")) == 200
    # the location can join the trace: its request names the webhook span as parent
    version, sent_trace, sent_parent, _flags = receiver.traceparents[0].split("-")
    assert (version, sent_trace) == ("00", f"{trace_id:032x}")
    assert sent_parent == f"{webhook[0].context.span_id:016x}"

    # the store's queries of the API request and of the activities are in it too
    queries = [s for s in in_trace if (s.attributes or {}).get("db.system") == "sqlite"]
    assert any(q.parent and q.parent.span_id == api[0].context.span_id for q in queries)
    activity_ids = {s.context.span_id for s in activities}
    assert any(q.parent and q.parent.span_id in activity_ids for q in queries)

    # a command on the order: its request's trace has the update's start; the workflow's
    # handling of it joins the order's trace, linked to that start
    status, body = await stack.call(
        "POST", f"/v1/orders/{quote(order_id)}/cancel", key="web", json={"reason": "traced"}
    )
    assert status == 200, body
    spans = list(traced.spans.get_finished_spans())
    cancel = [s for s in spans if s.name == "POST /v1/orders/{order_id}/cancel"]
    assert len(cancel) == 1
    assert (cancel[0].attributes or {}).get("oms.order_id") == order_id
    start = [
        s
        for s in named(spans, "StartWorkflowUpdate:cancel")
        if s.context.trace_id == cancel[0].context.trace_id
    ]
    assert len(start) == 1
    assert (start[0].attributes or {}).get("oms.order_id") == order_id
    handled = [s for s in named(spans, "HandleUpdate:cancel") if s.context.trace_id == trace_id]
    assert len(handled) == 1, sorted(s.name for s in spans if s.context.trace_id == trace_id)
    assert (handled[0].attributes or {}).get("oms.order_id") == order_id
    assert [link.context.span_id for link in handled[0].links] == [start[0].context.span_id]

    # the traced history replays with the interceptor, and a replay writes no spans again
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    await asyncio.wait_for(handle.result(), WAIT_SECONDS)  # cancelled: the workflow ends
    history = await handle.fetch_history()
    before = len(traced.spans.get_finished_spans())
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        interceptors=tracing.client_interceptors(),
    )
    await replayer.replay_workflow(history)
    again = [s.name for s in traced.spans.get_finished_spans()[before:]]
    assert again == []


async def test_spans_reach_the_configured_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """OMS_OTEL_EXPORTER_OTLP_ENDPOINT: spans go by OTLP/HTTP to `<endpoint>/v1/traces`
    under the process's service name (OTEL_SERVICE_NAME overrides it)."""
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    collector = TestServer(app)
    await collector.start_server()
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    previous = tracing.install(None)
    try:
        settings = Settings(otel_endpoint=str(collector.make_url("/")))
        provider = tracing.configure(settings, tracing.WORKER_SERVICE, set_global=False)
        assert isinstance(provider, TracerProvider)
        assert tracing.provider() is provider
        with provider.get_tracer("test").start_as_current_span("probe"):
            pass
        # the exporter posts from its own thread (blocking): flush it off the event loop
        await asyncio.to_thread(tracing.shutdown)
        assert tracing.provider() is None
    finally:
        tracing.install(previous)
        await collector.close()
    assert len(received) == 1
    resource = received[0].resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "oms-worker"
    assert [s.name for s in received[0].resource_spans[0].scope_spans[0].spans] == ["probe"]


def test_without_an_endpoint_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    previous = tracing.install(None)
    try:
        assert tracing.configure(Settings(otel_endpoint=""), tracing.API_SERVICE) is None
        assert tracing.provider() is None
        assert tracing.api_middlewares() == []
        assert tracing.client_interceptors() == []
        assert tracing.client_trace_configs("WH-1") == []
    finally:
        tracing.install(previous)
    # a value that is no URL is refused at start, naming the setting
    problems = Settings(otel_endpoint="collector:4318").refusals(api=True)
    assert problems and problems[0].startswith("OMS_OTEL_EXPORTER_OTLP_ENDPOINT")
