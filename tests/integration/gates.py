"""Test helpers to hold an order inside one stage and to watch its history.

A `Gate` stands in front of one activity: a worker built by `gated_worker` runs the real
activity of that name only once the test opens the gate, so the order stays in the stage
that called it (VALIDATING for `validate_order`, ROUTING for `route_order`) for exactly
as long as the test needs. Everything else on that worker is the real thing.

The worker runs in the test's own event loop, so a plain asyncio.Event is the gate.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio import activity
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from activities import all_activities
from api.app import init_app
from tests.integration.conftest import WAIT_SECONDS, Stack
from workers.main import WORKFLOWS

T = TypeVar("T")
E = EventType

# events that may follow a completed workflow task without leaving work in flight
_QUIET = {
    E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    E.EVENT_TYPE_MARKER_RECORDED,
    E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    E.EVENT_TYPE_TIMER_STARTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}
_SERVER_RETRIES = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_UPDATE,
}
_ACTIVITY_IN_FLIGHT = {E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, E.EVENT_TYPE_ACTIVITY_TASK_STARTED}
_CLOSED = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


class Gate:
    """Holds every call of one activity (from call number `hold_from` on) until opened;
    counts the calls that arrived."""

    def __init__(self, hold_from: int = 1) -> None:
        self.hold_from = hold_from
        self.arrived = asyncio.Event()  # a call is held
        self.opened = asyncio.Event()
        self.calls = 0
        self.finished = 0  # calls that returned or raised

    @property
    def idle(self) -> bool:
        """Every call that arrived has finished (its effects are in the store)."""
        return self.calls == self.finished

    def open(self) -> None:
        self.opened.set()

    async def pass_through(self) -> None:
        self.calls += 1
        if self.calls < self.hold_from:
            return
        self.arrived.set()
        await self.opened.wait()


def _activity_name(fn: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(fn)
    assert definition is not None and definition.name is not None, fn
    return definition.name


def _gated(real: Callable[..., Awaitable[Any]], gate: Gate) -> Callable[..., Awaitable[Any]]:
    """The same activity (name, argument and result types) behind the gate."""

    @functools.wraps(real, updated=())
    async def wrapper(*args: Any) -> Any:
        try:
            await gate.pass_through()
            return await real(*args)
        finally:
            gate.finished += 1

    return activity.defn(name=_activity_name(real))(wrapper)


def gated_worker(own: Stack, gates: dict[str, Gate]) -> Worker:
    """A full worker on the stack's task queue whose activities named in `gates` wait for
    their gate."""
    activities = []
    for fn in all_activities(own.store, webhook_secret=own.settings.webhook_secret):
        gate = gates.get(_activity_name(fn))
        activities.append(fn if gate is None else _gated(fn, gate))
    missing = set(gates) - {_activity_name(fn) for fn in activities}
    assert not missing, f"no activities named {missing}"
    return Worker(
        own.client,
        task_queue=own.settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        max_concurrent_activities=50,
    )


@asynccontextmanager
async def private_stack(stack: Stack) -> AsyncIterator[Stack]:
    """The same store and Temporal, with an API and a task queue of the test's own (and no
    worker until the test starts one)."""
    settings = replace(stack.settings, task_queue=f"oms-inv-{uuid.uuid4().hex[:8]}")
    http = TestClient(TestServer(init_app(settings, store=stack.store, client=stack.client)))
    await http.start_server()
    try:
        yield Stack(
            http=http,
            store=stack.store,
            client=stack.client,
            settings=settings,
            backend=stack.backend,
        )
    finally:
        await http.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, seconds: float = WAIT_SECONDS
) -> T:
    """Poll `probe` until it returns something, failing after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        found = await probe()
        if found is not None:
            return found
        if loop.time() >= deadline:
            pytest.fail(f"{what}: not reached in {seconds}s")
        await asyncio.sleep(0.1)


async def history(own: Stack, workflow_id: str) -> list[HistoryEvent]:
    fetched = await own.client.get_workflow_handle(workflow_id).fetch_history()
    return list(fetched.events)


def kinds(events: Sequence[HistoryEvent]) -> list[str]:
    return [E.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


def count(events: Sequence[HistoryEvent], kind: int) -> int:
    return sum(1 for e in events if e.event_type == kind)


def signal_names(events: Sequence[HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in events
        if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


def task_failures(events: Sequence[HistoryEvent]) -> list[str]:
    """The messages of every failed workflow task, except the server's own "a signal or
    update arrived while the workflow tried to close, run the task again"."""
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for e in events
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause not in _SERVER_RETRIES
    ]


def idle(events: Sequence[HistoryEvent]) -> bool:
    """Closed, or its last workflow task completed and left nothing in flight."""
    if events and events[-1].event_type in _CLOSED:
        return True
    done = [i for i, e in enumerate(events) if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    return bool(done) and all(e.event_type in _QUIET for e in events[done[-1] + 1 :])


def quiescent(events: Sequence[HistoryEvent]) -> bool:
    """Idle, except for activities in flight (e.g. held by a gate): the workflow has done
    everything it can until one of them completes."""
    if idle(events):
        return True
    done = [i for i, e in enumerate(events) if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    return bool(done) and all(
        e.event_type in _QUIET or e.event_type in _ACTIVITY_IN_FLIGHT
        for e in events[done[-1] + 1 :]
    )


async def wait_history(
    own: Stack, workflow_id: str, check: Callable[[list[HistoryEvent]], bool], what: str
) -> list[HistoryEvent]:
    async def probe() -> list[HistoryEvent] | None:
        events = await history(own, workflow_id)
        return events if check(events) else None

    return await eventually(probe, f"{workflow_id}: {what}")


async def settle(own: Stack, *workflow_ids: str) -> None:
    """Every one of these workflows is idle at the same moment (checked twice in a row, so
    a signal one of them sent to another has been handled)."""

    async def probe() -> bool | None:
        for _ in range(2):
            for workflow_id in workflow_ids:
                if not idle(await history(own, workflow_id)):
                    return None
        return True

    await eventually(probe, f"{', '.join(workflow_ids)} idle")


async def wait_closed(own: Stack, workflow_id: str) -> WorkflowExecutionStatus:
    handle = own.client.get_workflow_handle(workflow_id)

    async def probe() -> WorkflowExecutionStatus | None:
        status = (await handle.describe()).status
        return None if status in (None, WorkflowExecutionStatus.RUNNING) else status

    return await eventually(probe, f"{workflow_id} closed")
