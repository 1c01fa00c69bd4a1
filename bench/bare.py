"""The bare baseline of bench/lifecycle.py: a workflow pair with as many steps as an order
and nothing else. The parent runs 5 activities (an order's validation, routing, response,
documents, submission) and a child that runs 4 activities and waits for 3 signals (a
release: write it, then pick, ship and deliver as the location reports them). The
activities do nothing, so what it costs is Temporal's: workflow tasks, activity tasks,
history events.

`python -m bench.bare ADDRESS NAMESPACE TASK_QUEUE` runs one worker process for it (the
benchmark starts as many as it starts OMS workers), with an OMS worker's slots, sticky
cache and pollers (the OMS_WORKER_* settings).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from functools import partial

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

STEP_TIMEOUT = timedelta(seconds=30)
PARENT_STEPS = ("validate", "route", "respond", "document", "submit")
REPORTS = ("pick", "ship", "deliver")


@activity.defn
async def bare_step(name: str) -> str:
    return name


@workflow.defn
class BareRelease:
    def __init__(self) -> None:
        self.reported: list[str] = []

    @workflow.signal
    def report(self, what: str) -> None:
        self.reported.append(what)

    @workflow.run
    async def run(self) -> int:
        await workflow.execute_activity(bare_step, "release", start_to_close_timeout=STEP_TIMEOUT)
        for count, what in enumerate(REPORTS, start=1):
            await workflow.wait_condition(partial(self.reported_at_least, count))
            await workflow.execute_activity(bare_step, what, start_to_close_timeout=STEP_TIMEOUT)
        return len(self.reported)

    def reported_at_least(self, count: int) -> bool:
        return len(self.reported) >= count


@workflow.defn
class BareOrder:
    @workflow.run
    async def run(self) -> str:
        for step in PARENT_STEPS:
            await workflow.execute_activity(bare_step, step, start_to_close_timeout=STEP_TIMEOUT)
        await workflow.execute_child_workflow(
            BareRelease.run, id=f"{workflow.info().workflow_id}-release"
        )
        return "DELIVERED"


async def serve(address: str, namespace: str, task_queue: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # an OMS worker's capacity (the same OMS_WORKER_* settings): both sides poll and take
    # tasks alike (imported here: the workflows above are re-imported in the sandbox)
    from workers.main import capacity
    from workers.settings import Settings

    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BareOrder, BareRelease],
        activities=[bare_step],
        **capacity(Settings().worker_tuning()),
    )
    async with worker:
        print(f"bare worker on task queue {task_queue}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
