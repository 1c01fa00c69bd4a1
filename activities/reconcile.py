"""Reservation reconciliation: stock held by orders whose workflow is no longer running.

An order workflow terminated in the Temporal UI (or reset, or failed at the history
limit) never runs its cancel path, so its reservations would stay ACTIVE for ever.
For each order still holding stock this activity asks Temporal whether the order's
workflow runs; for a closed one it hands each reservation back the way the order
would have:

- a reservation that belongs to a release whose FulfillmentWorkflow still runs (an
  abandoned child) is cancelled by that release: it gets `cancel_lines`, releases the
  reservation itself and tells the location to stop;
- any other reservation is released here, after the open shipment / work order it
  belongs to is marked cancelled in the store.

What it did goes into the order's audit trail (`reservations_reconciled`). Every step
is guarded and idempotent (store releases count once, a repeated cancel_lines is a
no-op in the release, identical events are written once), so two runs at once or a
retried page change nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from store import Store
from store.inventory import ReservationRow
from store.reconcile import HoldingOrder, OrderCursor, ReconcileRepository
from workflows.fulfillment import fulfillment_workflow_id
from workflows.model import CancelLinesInput
from workflows.order_state import shipment_key, work_order_id
from workflows.reconcile_model import (
    MAX_REPORTED_ERRORS,
    ReconcileCursor,
    ReconcilePageInput,
    ReconcilePageResult,
    ReconcileReport,
)

log = logging.getLogger("oms.reconcile")

EVENT_TYPE = "reservations_reconciled"
# one Temporal call must not eat the page's heartbeat timeout
RPC_TIMEOUT = timedelta(seconds=10)
# a describe of the latest run never says CONTINUED_AS_NEW, but if it did, a newer run
# is on its way: count it as running
NOT_CLOSED = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)


@dataclass
class _Release:
    """One release of a closed order that may still hold its reservations."""

    workflow_id: str
    shipment_key: str
    work_order_id: str
    location_id: str
    line_ids: list[str] = field(default_factory=list)  # lines not shipped or cancelled


class ReconcileActivities:
    def __init__(self, store: Store, client: Client | None = None) -> None:
        self.store = store
        self.reconcile = ReconcileRepository(store.db)
        self._client = client

    def _temporal(self) -> Client:
        # a worker built without a client (tests) still has the worker's own client
        return self._client if self._client is not None else activity.client()

    @activity.defn(name="reconcile_reservations")
    async def reconcile_reservations(self, input: ReconcilePageInput) -> ReconcilePageResult:
        client = self._temporal()
        report = ReconcileReport()
        after = _cursor(input.after)
        # a retried page carries on after the last order the failed attempt finished
        details = activity.info().heartbeat_details
        if details:
            done = ReconcilePageResult.model_validate(details[0])
            report, after = done.report, _cursor(done.next) or after
        orders = await self.reconcile.holding_orders(after=after, limit=input.limit)
        for order in orders:
            report.orders_checked += 1
            try:
                await self._reconcile_order(client, order, report)
            except Exception as err:  # one bad order must not stop the others
                log.exception("reconciling order %s failed", order.order_id)
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(f"{order.order_id}: {type(err).__name__}: {err}")
            # a copy: the SDK sends heartbeats later, after the report has moved on
            activity.heartbeat(
                ReconcilePageResult(
                    report=report.model_copy(deep=True), next=_page_cursor(order.cursor)
                )
            )
        last = orders[-1].cursor if len(orders) == input.limit else None
        return ReconcilePageResult(report=report, next=_page_cursor(last) if last else None)

    async def _reconcile_order(
        self, client: Client, order: HoldingOrder, report: ReconcileReport
    ) -> None:
        status = await _status(client, order.workflow_id)
        if status in NOT_CLOSED:
            return
        report.orders_closed += 1
        why = f"order workflow {order.workflow_id} {'not found' if status is None else status.name}"
        holding = {r.reservation_id: r for r in order.reservations}
        notes: list[str] = []
        for release in await self._releases(order.order_id):
            covered = [
                r
                for r in holding.values()
                if r.location_id == release.location_id and r.line_id in release.line_ids
            ]
            if await _status(client, release.workflow_id) in NOT_CLOSED:
                if not covered:
                    continue  # holds no stock of ours: the running release's own business
                if await self._ask_release_to_cancel(client, release, covered, why):
                    report.releases_cancelled += 1
                    notes.append(
                        f"asked release {release.workflow_id} (still running) to cancel "
                        f"line(s) {', '.join(sorted({r.line_id for r in covered}))}, "
                        f"reservation(s) {', '.join(r.reservation_id for r in covered)}"
                    )
                    for r in covered:
                        del holding[r.reservation_id]
                    continue
            # no release workflow will do it: stop the location's work first, then the
            # units go back below (a crash in between leaves the reservation for the
            # next run, never an open shipment without stock behind it)
            await self.store.fulfillment.cancel(
                release.shipment_key, release.work_order_id, release.line_ids
            )
            notes.append(
                f"cancelled shipment {release.shipment_key} (work order "
                f"{release.work_order_id}, line(s) {', '.join(release.line_ids)})"
            )
        for r in holding.values():
            if await self.store.inventory.release(r.reservation_id):
                report.reservations_released += 1
                notes.append(f"released reservation {_describe(r)}")
        if notes:
            detail = f"{why}: " + "; ".join(notes)
            await self.reconcile.append_event(order.order_id, datetime.now(UTC), EVENT_TYPE, detail)
            log.info("order %s reconciled: %s", order.order_id, detail)

    async def _releases(self, order_id: str) -> list[_Release]:
        """The order's releases that are not finished in the store: shipments with open
        lines, and work orders whose release has not been written yet."""
        releases: dict[str, _Release] = {}
        for line in await self.reconcile.open_shipment_lines(order_id):
            seq = int(line.release_key.rsplit("-R", 1)[1])
            release = releases.setdefault(
                line.shipment_key,
                _Release(
                    line.workflow_id,
                    line.shipment_key,
                    work_order_id(order_id, seq),
                    line.location_id,
                ),
            )
            release.line_ids.append(line.line_id)
        for wo in await self.reconcile.submitted_work_orders(order_id):
            seq = int(wo.work_order_id.rsplit("-WO", 1)[1])
            key = shipment_key(order_id, seq)
            releases.setdefault(
                key,
                _Release(
                    fulfillment_workflow_id(order_id, seq),
                    key,
                    wo.work_order_id,
                    wo.location_id,
                    list(wo.line_ids),
                ),
            )
        return list(releases.values())

    async def _ask_release_to_cancel(
        self, client: Client, release: _Release, covered: list[ReservationRow], why: str
    ) -> bool:
        """Signal a running release workflow to cancel these lines; False when it has
        closed meanwhile."""
        request = CancelLinesInput(
            line_ids=sorted({r.line_id for r in covered}),
            reason=f"reservation reconciliation: {why}",
        )
        try:
            await client.get_workflow_handle(release.workflow_id).signal(
                "cancel_lines", request, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # it closed after the describe
                return False
            raise
        return True


async def _status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """Status of the latest run; None when Temporal has no such workflow."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if described.status is None:
        raise RuntimeError(f"workflow {workflow_id} has no status")
    return described.status


def _describe(r: ReservationRow) -> str:
    return f"{r.reservation_id} ({r.quantity} x {r.sku} at {r.location_id}, was {r.status})"


def _cursor(cursor: ReconcileCursor | None) -> OrderCursor | None:
    return None if cursor is None else OrderCursor(cursor.first_reserved_at, cursor.order_id)


def _page_cursor(cursor: OrderCursor) -> ReconcileCursor:
    return ReconcileCursor(first_reserved_at=cursor.first_reserved_at, order_id=cursor.order_id)
