"""OpenTelemetry traces of an order's path: the API request, the workflow start and
updates, the workflow and each activity (the Temporal SDK's TracingInterceptor), the
store's queries (SQLAlchemy) and the calls to partners' webhooks (aiohttp client, with
the trace context in the request's `traceparent` header, so a receiver can join it).

Tracing is on when an OTLP endpoint is configured: `OMS_OTEL_EXPORTER_OTLP_ENDPOINT`,
or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
Spans then go over OTLP/HTTP (protobuf) in batches, under the service name `oms-api` or
`oms-worker` (`OTEL_SERVICE_NAME` overrides it). Without an endpoint, or with
`OTEL_SDK_DISABLED=true`, nothing is installed: no provider, no interceptor, no
middleware, no listeners on the engine.

Every span that concerns one order carries its id as `oms.order_id`: the API's span of
an order route, the Temporal spans (derived from the workflow id `order-<id>`, also for
a release's `order-<id>-release-<n>`), and the webhook call. This module imports nothing
of Temporal or aiohttp at import time (the store uses it and stays free of both).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web
    from sqlalchemy import Engine
    from temporalio.client import Interceptor

    from workers.settings import Settings

log = logging.getLogger("oms.tracing")

ORDER_ID = "oms.order_id"
API_SERVICE = "oms-api"
WORKER_SERVICE = "oms-worker"
INSTRUMENTATION = "oms"
# what the Temporal SDK's TracingInterceptor puts on its spans
TEMPORAL_WORKFLOW_ID = "temporalWorkflowID"
# the API's requests not worth a trace: probes and scrapes (as for the access log)
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
_ORDER_ROUTE_PREFIXES = ("/v1/orders",)
# how long a stopping process waits for the collector to take its last spans
SHUTDOWN_SECONDS = 3.0

_provider: TracerProvider | None = None


def provider() -> TracerProvider | None:
    """The tracer provider this process traces with, or None: tracing is off."""
    return _provider


def install(chosen: TracerProvider | None) -> TracerProvider | None:
    """Make `chosen` the provider that components built from now on trace with (None
    turns tracing off for them); returns the one it replaces. Tests install one with an
    in-memory exporter and put the old one back afterwards."""
    global _provider
    previous, _provider = _provider, chosen
    return previous


def otlp_endpoint(settings: Settings) -> str | None:
    """Where spans go (the OTLP/HTTP traces URL), "" when the exporter takes it from the
    standard OTEL_ variables, or None when tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    ours = settings.otel_endpoint.strip()
    if ours:
        return traces_url(ours)
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if os.environ.get(name, "").strip():
            return ""
    return None


def traces_url(base: str) -> str:
    """The traces URL for an OTLP/HTTP base URL (`http://collector:4318` ->
    `http://collector:4318/v1/traces`); a URL already naming /v1/traces is kept."""
    base = base.strip().rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def new_provider(service: str) -> TracerProvider:
    """A provider for `service` (OTEL_SERVICE_NAME wins) that puts the order id on the
    Temporal spans; add an exporter's span processor to it."""
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service
    # imported here, outside any workflow: the processor also runs while a workflow task
    # is active (the interceptor's workflow spans), where the sandbox intercepts imports
    from oms.logs import order_id_from_workflow_id

    # shut down by shutdown(), bounded: not by an exit handler that could hang the exit
    chosen = TracerProvider(resource=Resource.create({SERVICE_NAME: name}), shutdown_on_exit=False)
    chosen.add_span_processor(OrderIdSpanProcessor(order_id_from_workflow_id))
    return chosen


def configure(
    settings: Settings, service: str, *, set_global: bool = True
) -> TracerProvider | None:
    """Start exporting this process's spans over OTLP/HTTP when an endpoint is configured
    (see the module's docstring); None, and nothing installed, otherwise. `set_global`
    also makes it OpenTelemetry's global provider (once per process; tests leave it)."""
    endpoint = otlp_endpoint(settings)
    if endpoint is None:
        log.info("traces: off (no OTLP endpoint configured)")
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    chosen = new_provider(service)
    exporter = OTLPSpanExporter(endpoint=endpoint or None)
    chosen.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(chosen)  # for libraries that use the global one
    install(chosen)
    log.info("traces: OTLP/HTTP to %s", endpoint or "the OTEL_EXPORTER_OTLP_* endpoint")
    return chosen


def shutdown(timeout: float = SHUTDOWN_SECONDS) -> None:
    """Send the spans still queued and stop tracing; a collector that does not answer
    delays the process's exit by at most `timeout` seconds (its spans are lost)."""
    chosen = install(None)
    if chosen is None:
        return
    sender = threading.Thread(target=chosen.shutdown, name="oms-traces-shutdown", daemon=True)
    sender.start()
    sender.join(timeout)
    if sender.is_alive():
        log.warning("traces: the collector did not take the last spans within %.0f s", timeout)


def tracer(name: str = INSTRUMENTATION) -> trace.Tracer | None:
    return _provider.get_tracer(name) if _provider is not None else None


# --- the order id on spans ---------------------------------------------------------


def current_activity_order_id() -> str | None:
    """The order of the activity running in this task, if any."""
    from temporalio import activity

    from oms.logs import order_id_from_workflow_id

    if not activity.in_activity():
        return None
    info = activity.info()
    return order_id_from_workflow_id(info.workflow_id or "", info.workflow_type)


class OrderIdSpanProcessor(SpanProcessor):
    """Puts `oms.order_id` on every Temporal span of an order's workflow (from the
    `temporalWorkflowID` attribute the SDK sets), and on the API request span that
    started it or sent it an update (a new order's id is known only once it is started;
    the path of an order route names the order as the caller knows it). `order_of` maps
    a workflow id and type to the order id (oms.logs.order_id_from_workflow_id)."""

    def __init__(self, order_of: Callable[[str, str | None], str | None]) -> None:
        self.order_of = order_of

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes or {}
        workflow_id = attributes.get(TEMPORAL_WORKFLOW_ID)
        if not isinstance(workflow_id, str) or ORDER_ID in attributes:
            return
        # "RunWorkflow:OrderWorkflow": an OrderWorkflow's id is never cut at -release-<n>
        _, _, workflow_type = span.name.partition(":")
        kind_of = workflow_type if span.name.startswith("RunWorkflow:") else None
        order_id = self.order_of(workflow_id, kind_of)
        if order_id is None:
            return
        span.set_attribute(ORDER_ID, order_id)
        parent = trace.get_current_span(parent_context)
        if (
            isinstance(parent, Span)
            and parent.kind is SpanKind.SERVER
            and parent.is_recording()
            and (parent.attributes or {}).get("http.route") is not None
        ):
            parent.set_attribute(ORDER_ID, order_id)

    def on_end(self, span: ReadableSpan) -> None:
        pass


# --- the API: one span per request ------------------------------------------------


def api_middlewares() -> list[Callable[..., Any]]:
    """The aiohttp middleware that traces requests, when tracing is on."""
    chosen = tracer("oms.api")
    if chosen is None:
        return []
    from aiohttp import web

    request_tracer = chosen

    @web.middleware
    async def trace_requests(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path in QUIET_PATHS:
            return await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
        }
        if route is not None:
            attributes["http.route"] = route
        order_id = request.match_info.get("order_id")
        if order_id and route is not None and route.startswith(_ORDER_ROUTE_PREFIXES):
            attributes[ORDER_ID] = order_id
        name = f"{request.method} {route}" if route is not None else request.method
        with request_tracer.start_as_current_span(
            name,
            context=extract(request.headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            try:
                response: web.StreamResponse = await handler(request)
            except web.HTTPException as exc:
                _answer_attributes(span, exc.status)
                raise
            _answer_attributes(span, response.status)
            if response.status == 201 and request.method == "POST" and route == "/v1/orders":
                _created_order(span, response)
            return response

    return [trace_requests]


def _answer_attributes(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _created_order(span: trace.Span, response: web.StreamResponse) -> None:
    """A new order's id from the 201 answer (when no Temporal span named it already)."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes | bytearray) or len(body) > 64 * 1024:
        return
    try:
        order_id = json.loads(body).get("order_id")
    except (ValueError, AttributeError):
        return
    if isinstance(order_id, str):
        span.set_attribute(ORDER_ID, order_id)


# --- Temporal ------------------------------------------------------------------------


def client_interceptors() -> list[Interceptor]:
    """The Temporal SDK's tracing interceptor, when tracing is on: on a client it traces
    starts, updates, signals and queries, and (the worker takes its client's
    interceptors) every workflow and activity the client's workers run."""
    chosen = tracer("temporalio")
    if chosen is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(chosen)]


# --- partners' webhooks ---------------------------------------------------------------


def client_trace_configs(partner: str) -> list[aiohttp.TraceConfig]:
    """Trace configs for an aiohttp client session calling `partner`: one client span per
    request, with the trace context injected into the request headers, the order of the
    running activity as `oms.order_id` and the partner as `oms.partner`."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    order_id = current_activity_order_id()

    def request_hook(span: trace.Span, params: Any) -> None:
        if not span.is_recording():
            return
        span.set_attribute("oms.partner", partner)
        if order_id is not None:
            span.set_attribute(ORDER_ID, order_id)

    return [create_trace_config(request_hook=request_hook, tracer_provider=_provider)]


# --- the store -----------------------------------------------------------------------


def instrument_engine(engine: Engine) -> None:
    """A span per statement the engine runs (SQLAlchemy instrumentation), when on."""
    chosen = tracer("opentelemetry.instrumentation.sqlalchemy")
    if chosen is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    # per engine (no global patching of create_engine); connection-pool usage is a
    # metric, and metrics are Prometheus' business here
    unused = NoOpMeter("oms").create_up_down_counter("db.client.connections.usage")
    EngineTracer(chosen, engine, unused)
