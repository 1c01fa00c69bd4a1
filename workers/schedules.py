"""Temporal Schedules the worker keeps in place.

`oms-reconcile-reservations` starts ReconcileReservationsWorkflow every
`OMS_RECONCILE_INTERVAL_SECONDS` on the worker's task queue. Each worker makes sure
at its start that the schedule exists with the configured interval; several workers
starting at once all succeed (one creates, the others update). A schedule an operator
paused stays paused.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workers.settings import Settings
from workflows.reconcile import ReconcileReservationsWorkflow
from workflows.reconcile_model import ReconcileInput

RECONCILE_SCHEDULE_ID = "oms-reconcile-reservations"
# a run that hangs is ended so the schedule (overlap SKIP) can start the next one
RECONCILE_RUN_TIMEOUT = timedelta(hours=1)


def reconcile_schedule(settings: Settings, schedule_id: str = RECONCILE_SCHEDULE_ID) -> Schedule:
    seconds = settings.reconcile_interval_seconds
    if seconds < 1:
        raise ValueError(f"OMS_RECONCILE_INTERVAL_SECONDS must be at least 1, not {seconds}")
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileReservationsWorkflow.run,
            ReconcileInput(),
            # Temporal appends the scheduled time to this id for each run
            id=schedule_id,
            task_queue=settings.task_queue,
            execution_timeout=RECONCILE_RUN_TIMEOUT,
            static_summary="give back the stock of orders whose workflow has closed",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))]),
        # a run still busy when the next is due: skip that one, never two at once
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note="reservation reconciliation (OMS worker); results are the runs' reports"
        ),
    )


async def ensure_reconcile_schedule(
    client: Client, settings: Settings, *, schedule_id: str = RECONCILE_SCHEDULE_ID
) -> ScheduleHandle:
    """Create the reconciliation schedule, or bring an existing one to these settings
    (interval, task queue, action, policy); its paused state and note are kept."""
    wanted = reconcile_schedule(settings, schedule_id)
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.action = wanted.action
        schedule.spec = wanted.spec
        schedule.policy = wanted.policy
        return ScheduleUpdate(schedule=schedule)

    await handle.update(update)
    return handle
