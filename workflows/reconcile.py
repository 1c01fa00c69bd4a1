"""ReconcileReservationsWorkflow: gives back the stock of orders whose workflow ended
without doing so (terminated in the UI, reset, failed at the history limit).

Started by the Temporal Schedule `oms-reconcile-reservations` (workers/schedules.py).
It pages through the orders holding stock with one activity per page, so each
activity stays bounded in time and a long backlog is still covered oldest first, and
returns what it did as its result (visible in the Temporal UI).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.reconcile_model import (
        ReconcileCursor,
        ReconcileInput,
        ReconcilePageInput,
        ReconcilePageResult,
        ReconcileReport,
    )

# A page asks Temporal about up to 500 orders (one describe each, with a short RPC
# timeout) and writes the store for the closed ones: minutes at most.
PAGE_START_TO_CLOSE = timedelta(minutes=10)
# the activity heartbeats after every order
PAGE_HEARTBEAT = timedelta(seconds=60)
# bounded: a store or Temporal outage fails this run; the schedule starts the next one
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)


@workflow.defn(name="ReconcileReservationsWorkflow")
class ReconcileReservationsWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileReport:
        report = ReconcileReport()
        cursor: ReconcileCursor | None = None
        for page in range(input.max_pages):
            workflow.set_current_details(f"page {page + 1}: {report.orders_checked} orders so far")
            result: ReconcilePageResult = await workflow.execute_activity(
                "reconcile_reservations",
                ReconcilePageInput(after=cursor, limit=input.page_size),
                result_type=ReconcilePageResult,
                start_to_close_timeout=PAGE_START_TO_CLOSE,
                heartbeat_timeout=PAGE_HEARTBEAT,
                retry_policy=PAGE_RETRY,
            )
            report = report.add(result.report)
            cursor = result.next
            if cursor is None:
                break
        else:  # max_pages reached with orders left: the next run starts over, oldest first
            report.more = True
        workflow.set_current_details(
            f"{report.orders_checked} orders checked, {report.orders_closed} closed, "
            f"{report.reservations_released} reservations released, "
            f"{report.releases_cancelled} releases cancelled, {len(report.errors)} errors"
        )
        return report
