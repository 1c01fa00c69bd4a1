"""Worker entry point: runs the order, fulfillment and reconciliation workflows and every
activity, and makes sure the reconciliation schedule exists."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import all_activities, metrics
from oms import logs, tracing
from store import Store
from workers.bytecode import keep_compiled_modules, remove_compiled_modules
from workers.client import Stopped, connect_with_retry, open_store_with_retry
from workers.schedules import ensure_reconcile_schedule
from workers.search_attributes import ensure_search_attributes
from workers.settings import Settings, WorkerTuning, check_or_exit, host_port
from workflows.fulfillment import FulfillmentWorkflow
from workflows.order import OrderWorkflow
from workflows.reconcile import ReconcileReservationsWorkflow
from workflows.returns import ReturnWorkflow

log = logging.getLogger("oms.worker")

WORKFLOWS = [OrderWorkflow, FulfillmentWorkflow, ReturnWorkflow, ReconcileReservationsWorkflow]
# The sandbox imports a workflow's module afresh for every workflow it starts (or replays
# after an eviction), and with it every module that is not passed through: for an order
# the whole workflows package, about a tenth of the worker's CPU under load. Our workflow
# modules keep no state of their own (module globals are constants), so they are imported
# once per process and shared. What the sandbox checks at run time (no clock, no I/O, no
# randomness outside `workflow.*`) is still checked on the strict runner by every replay
# in the tests (tests/test_replay.py, tests/integration/test_histories.py), and by every
# worker the tests run (OMS_WORKER_STRICT_SANDBOX=1).
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def build_worker(
    client: Client,
    store: Store,
    settings: Settings,
    *,
    graceful_shutdown: timedelta = timedelta(0),
) -> Worker:
    """`graceful_shutdown`: how long running activities may go on once the worker is
    asked to stop (serve() passes OMS_GRACEFUL_SHUTDOWN_SECONDS). Its capacity comes from
    the OMS_WORKER_* settings (Settings.worker_tuning): slots per kind of task, the sticky
    cache and the pollers; several such processes share the task queue."""
    keep_compiled_modules()
    tuning = settings.worker_tuning()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=SandboxedWorkflowRunner() if settings.strict_sandbox else SANDBOX,
        activities=all_activities(
            store,
            webhook_secret=settings.webhook_secret,
            client=client,
            outgoing_allow=settings.outgoing_allow_list(),
        ),
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=[metrics.StageFailureInterceptor()],
        **capacity(tuning),
    )


def capacity(tuning: WorkerTuning) -> dict[str, Any]:
    """The Worker options a process's OMS_WORKER_* settings give: slots per kind of task,
    the sticky cache and the pollers (bench/bare.py's workers take the same)."""
    return {
        "max_concurrent_activities": tuning.max_concurrent_activities,
        "max_concurrent_local_activities": tuning.max_concurrent_local_activities,
        "max_concurrent_workflow_tasks": tuning.max_concurrent_workflow_tasks,
        "max_cached_workflows": tuning.max_cached_workflows,
        "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(tuning.workflow_task_pollers),
        "activity_task_poller_behavior": PollerBehaviorSimpleMaximum(tuning.activity_task_pollers),
    }


def metrics_runtime(settings: Settings) -> Runtime | None:
    """An SDK runtime exporting the Temporal SDK's metrics (temporal_workflow_task_*,
    temporal_activity_*, temporal_sticky_cache_* ...) on OMS_WORKER_METRICS_ADDRESS in
    Prometheus format, or None (the SDK's default runtime) when it is empty or cannot
    be bound: a taken port costs the metrics, not the orders (logged as an error)."""
    address = host_port(settings.worker_metrics_address)
    if address is None:
        return None
    host, port = address
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
    except (ValueError, OSError) as err:
        log.error("no Temporal SDK metrics: OMS_WORKER_METRICS_ADDRESS=%s: %s", bind, err)
        return None


def serve_app_metrics(settings: Settings) -> WSGIServer | None:
    """Serve the worker's own metrics (activities/metrics.py) on
    OMS_WORKER_APP_METRICS_ADDRESS (in a thread), or nothing when it is empty."""
    address = host_port(settings.worker_app_metrics_address)
    if address is None:
        return None
    host, port = address
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.REGISTRY)
    except OSError as err:
        log.error(
            "no worker metrics: OMS_WORKER_APP_METRICS_ADDRESS=%s: %s",
            settings.worker_app_metrics_address,
            err,
        )
        return None
    return server


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the worker until `stop` is set. Started while the store or Temporal is
    unreachable, it waits for them (with backoff, logging) instead of exiting."""
    runtime = metrics_runtime(settings)
    app_metrics = serve_app_metrics(settings)
    log.info(
        "metrics: Temporal SDK's at %s, the worker's at %s",
        settings.worker_metrics_address if runtime is not None else "(off)",
        settings.worker_app_metrics_address if app_metrics is not None else "(off)",
    )
    try:
        await _serve(settings, stop, runtime)
    finally:
        if app_metrics is not None:
            await asyncio.to_thread(app_metrics.shutdown)
            app_metrics.server_close()


async def _serve(settings: Settings, stop: asyncio.Event, runtime: Runtime | None) -> None:
    try:
        store = await open_store_with_retry(settings, stop)
    except Stopped:
        log.info("stopped while waiting for the store")
        return
    try:
        client = await connect_with_retry(settings, stop, runtime=runtime)
    except Stopped:
        log.info("stopped while waiting for Temporal")
        await store.close()
        return
    try:
        await ensure_search_attributes(client, settings, stop)
    except Stopped:
        log.info("stopped while waiting for the search attributes")
        await store.close()
        return
    worker = build_worker(
        client,
        store,
        settings,
        graceful_shutdown=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    try:
        await ensure_reconcile_schedule(client, settings)
    except ValueError:
        raise  # OMS_RECONCILE_INTERVAL_SECONDS out of range: refuse to start
    except Exception:  # the worker still serves orders; the next start tries again
        log.exception("could not create or update the reservation reconciliation schedule")
    tuning = settings.worker_tuning()
    log.info(
        "worker on task queue %s at %s: %d workflow-task, %d activity and %d local-activity "
        "slots, sticky cache of %d workflows, %d workflow-task and %d activity pollers",
        settings.task_queue,
        settings.temporal_address,
        tuning.max_concurrent_workflow_tasks,
        tuning.max_concurrent_activities,
        tuning.max_concurrent_local_activities,
        tuning.max_cached_workflows,
        tuning.workflow_task_pollers,
        tuning.activity_task_pollers,
    )
    try:
        async with worker:
            await stop.wait()
            log.info(
                "stopping: no new tasks; running activities get up to %.0f s to finish",
                settings.graceful_shutdown_seconds,
            )
    finally:
        await store.close()


def main() -> None:
    settings = Settings()
    logs.configure(settings)
    check_or_exit(settings, api=False, log=log)
    tracing.configure(settings, tracing.WORKER_SERVICE)
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(run())
    finally:
        tracing.shutdown()  # the spans still queued (os._exit skips exit handlers)
        remove_compiled_modules()
    # the worker has shut down cleanly; leave without the interpreter's teardown, which
    # can crash (SIGSEGV) while the SDK's native threads still wind down their
    # connections to an unreachable Temporal, turning a clean stop into exit code -11
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
