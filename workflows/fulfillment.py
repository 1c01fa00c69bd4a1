"""FulfillmentWorkflow: one child per location and release.

release -> wait for the pick report -> ship -> deliver. Each step is an activity that
writes the store, then signals `fulfillment_progress` to the parent order; it runs as a
local activity in the workflow task that takes the store's report. Units
not found at pick are reported back as backordered: the parent re-routes them and a
new release (new release key, new shipment key) follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls, patches
    from workflows.model import (
        CancelLinesInput,
        CancelReleaseInput,
        DeliverReport,
        FulfillmentInput,
        FulfillmentProgress,
        FulfillmentResult,
        PickReport,
        ProgressKind,
        ReceiveTransferReport,
        RecordDeliveryInput,
        RecordPickInput,
        RecordReturnedToSenderInput,
        RecordShipInput,
        RecordTransferReceiptInput,
        ReleaseInput,
        ReturnedToSenderReport,
        ShipmentStatus,
        ShipReport,
        StoreReportResult,
    )


def fulfillment_workflow_id(order_id: str, seq: int) -> str:
    return f"order-{order_id}-release-{seq}"


@workflow.defn(name="FulfillmentWorkflow")
class FulfillmentWorkflow:
    @workflow.init
    def __init__(self, input: FulfillmentInput) -> None:
        self.input = input
        self.status = ShipmentStatus.OPEN
        self.line_ids = [line.line_id for line in input.lines]
        self.pick_report: PickReport | None = None
        self.ship_report: ShipReport | None = None
        self.delivery_report: DeliverReport | None = None
        self.returned_report: ReturnedToSenderReport | None = None
        self.receipt_report: ReceiveTransferReport | None = None
        self.picked: dict[str, int] = {}
        self.cancel_requests: list[CancelLinesInput] = []
        self.cancelled: set[str] = set()
        # progress for the order, sent in order by one task while the release goes on
        # (histories from before waited for each signal's delivery)
        # the order hears of each step from the step's activity (no signal from here,
        # whose delivery cost this workflow a task per step); histories from before sent
        # it from here, in order by one task (or waited for each signal's delivery)
        # each step a local activity in the workflow task that takes its report (histories
        # from before ran each as an activity task of its own)
        # (a release its order writes and records is newer than the patch: no marker, whose
        # TemporalChangeVersion upsert would cost a visibility write)
        self.local_steps = input.order_took_release or workflow.patched(patches.LOCAL_STEPS)
        self.progress_by_activity = self.local_steps or workflow.patched(
            patches.PROGRESS_FROM_ACTIVITIES
        )
        self.async_progress = self.progress_by_activity or workflow.patched(patches.ROUND_TRIPS)
        self.outbox: list[FulfillmentProgress] = []
        self.sender: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, input: FulfillmentInput) -> FulfillmentResult:
        workflow.set_current_details(f"releasing to {input.location_id}")
        if not input.order_took_release:  # (else the order writes and records it)
            released = self._progress(
                "released", {line.line_id: line.quantity for line in input.lines}
            )
            await self._step(
                "release_work_order",
                ReleaseInput(fulfillment=input, at=workflow.now(), **self._told(released)),
            )
            await self._tell_parent(released)

        workflow.set_current_details(f"waiting for the pick report of {input.shipment_key}")
        await self._wait(lambda: self.pick_report is not None, lambda: bool(self._live_lines()))
        if self._live_lines():
            assert self.pick_report is not None
            reported = {p.line_id: p.picked_quantity for p in self.pick_report.lines}
            self.picked = {lid: reported.get(lid, 0) for lid in self._live_lines()}
            ordered = {line.line_id: line.quantity for line in input.lines}
            picked = self._progress(
                "picked",
                self.picked,
                backordered={
                    lid: ordered[lid] - q for lid, q in self.picked.items() if q < ordered[lid]
                },
            )
            recorded = await self._step(
                "record_pick",
                RecordPickInput(fulfillment=input, picked=self.picked, **self._told(picked)),
            )
            if self.local_steps and isinstance(recorded, dict):
                # the store's first pick counts (one written before this task was lost)
                self.picked = {lid: int(recorded.get(lid, q)) for lid, q in self.picked.items()}
            self.status = ShipmentStatus.PICKED
            await self._tell_parent(picked)
        if self._shippable():
            workflow.set_current_details(f"packing {input.shipment_key}, waiting for ship")
            await self._wait(lambda: self.ship_report is not None, self._shippable)
        shipped = {lid: self.picked[lid] for lid in self._live_lines() if self.picked.get(lid)}
        if shipped:
            assert self.ship_report is not None
            progress = self._progress(
                "in_transfer" if input.transfer_to else "shipped",
                shipped,
                carrier=self.ship_report.carrier,
                tracking_number=self.ship_report.tracking_number,
            )
            await self._step(
                "record_ship",
                RecordShipInput(
                    fulfillment=input,
                    shipped=shipped,
                    carrier=self.ship_report.carrier,
                    tracking_number=self.ship_report.tracking_number,
                    **self._told(progress),
                ),
            )
            self.status = ShipmentStatus.SHIPPED
            await self._tell_parent(progress)
        if shipped and input.transfer_to:
            await self._transfer(shipped, input.transfer_to)
        elif shipped:
            workflow.set_current_details(f"{input.shipment_key} shipped, waiting for delivery")
            # shipped units cannot be cancelled any more; the carrier delivers them or
            # brings them back (only tracking reports the latter, so histories from before
            # never take that path)
            await workflow.wait_condition(
                lambda: self.delivery_report is not None or self.returned_report is not None
            )
            if self.delivery_report is None:
                progress = self._progress("returned_to_sender", shipped)
                await self._step(
                    "record_returned_to_sender",
                    RecordReturnedToSenderInput(
                        fulfillment=input, returned=shipped, **self._told(progress)
                    ),
                )
                self.status = ShipmentStatus.RETURNED_TO_SENDER
                await self._tell_parent(progress)
            else:
                progress = self._progress("delivered", shipped)
                await self._step(
                    "record_delivery",
                    RecordDeliveryInput(
                        fulfillment=input, delivered=shipped, **self._told(progress)
                    ),
                )
                self.status = ShipmentStatus.DELIVERED
                await self._tell_parent(progress)
        elif self.status == ShipmentStatus.PICKED:
            self.status = ShipmentStatus.BACKORDERED  # nothing found: all re-routed
        else:
            self.status = ShipmentStatus.CANCELLED
        workflow.set_current_details(f"{input.shipment_key} {self.status.value.lower()}")
        await workflow.wait_condition(
            lambda: (
                workflow.all_handlers_finished()
                and not self.outbox
                and (self.sender is None or self.sender.done())
            )
        )
        if self.sender is not None:
            self.sender.result()  # a failure shows as this workflow's
        return FulfillmentResult(
            release_key=input.release_key,
            delivered=shipped if self.status == ShipmentStatus.DELIVERED else {},
            cancelled=not shipped,
        )

    async def _transfer(self, shipped: dict[str, int], store: str) -> None:
        """Click and collect from another location: the shipped units travel to the
        pickup store, which receives them and hands them over to the customer (shipment
        S{n}-H there). Shipped units cannot be cancelled any more."""
        input = self.input
        workflow.set_current_details(
            f"{input.shipment_key} in transfer to {store}, waiting for its receipt"
        )
        await workflow.wait_condition(lambda: self.receipt_report is not None)
        progress = self._progress("ready_for_pickup", shipped)
        await self._step(
            "record_transfer_receipt",
            RecordTransferReceiptInput(fulfillment=input, received=shipped, **self._told(progress)),
        )
        self.status = ShipmentStatus.READY_FOR_PICKUP
        await self._tell_parent(progress)
        workflow.set_current_details(
            f"{input.handover_key} ready for pickup at {store}, waiting for the hand-over"
        )
        await workflow.wait_condition(lambda: self.delivery_report is not None)
        progress = self._progress("delivered", shipped)
        await self._step(
            "record_delivery",
            RecordDeliveryInput(fulfillment=input, delivered=shipped, **self._told(progress)),
        )
        self.status = ShipmentStatus.DELIVERED
        await self._tell_parent(progress)

    async def _wait(self, reported: Callable[[], bool], needed: Callable[[], bool]) -> None:
        """Wait for a store report while it is still `needed`, applying the parent's
        cancel requests meanwhile. A report that arrived first wins over a cancel."""
        while True:
            await workflow.wait_condition(
                lambda: bool(self.cancel_requests) or reported() or not needed()
            )
            if self.cancel_requests and not reported():
                await self._apply_cancels()
                continue
            return

    async def _apply_cancels(self) -> None:
        requests, self.cancel_requests = self.cancel_requests, []
        line_ids = [lid for r in requests for lid in r.line_ids if lid in self._live_lines()]
        if not line_ids:
            return
        # gone before the activity runs, so a ship report from now on cannot include them
        self.cancelled.update(line_ids)
        reason = "; ".join(r.reason for r in requests if r.reason)
        progress = self._progress("cancelled", {lid: 1 for lid in line_ids})
        await self._step(
            "cancel_release",
            CancelReleaseInput(
                fulfillment=self.input, line_ids=line_ids, reason=reason, **self._told(progress)
            ),
        )
        await self._tell_parent(progress)

    async def _step(self, name: str, arg: Any) -> Any:
        """A step's store write (and its signal to the order); its result."""
        return await activity_calls.run(name, arg, local=self.local_steps)

    def _shippable(self) -> bool:
        return any(self.picked.get(lid) for lid in self._live_lines())

    def _live_lines(self) -> list[str]:
        return [lid for lid in self.line_ids if lid not in self.cancelled]

    def _progress(
        self,
        kind: ProgressKind,
        quantities: dict[str, int],
        *,
        backordered: dict[str, int] | None = None,
        carrier: str | None = None,
        tracking_number: str | None = None,
    ) -> FulfillmentProgress | None:
        """What the order is told of a step (nothing without an order: a release started
        on its own)."""
        if workflow.info().parent is None:
            return None
        return FulfillmentProgress(
            release_key=self.input.release_key,
            shipment_key=self.input.shipment_key,
            location_id=self.input.location_id,
            kind=kind,
            quantities=quantities,
            backordered=backordered or {},
            carrier=carrier,
            tracking_number=tracking_number,
        )

    def _told(self, progress: FulfillmentProgress | None) -> dict[str, Any]:
        """The step activity's fields that make it signal the order once the store has
        the step."""
        parent = workflow.info().parent
        if not self.progress_by_activity or progress is None or parent is None:
            return {}
        return {"progress": progress, "order_workflow_id": parent.workflow_id}

    async def _tell_parent(self, progress: FulfillmentProgress | None) -> None:
        """Histories from before the step's activity told the order: signal it from here."""
        if progress is None or self.progress_by_activity:
            return
        if not self.async_progress:
            await self._signal_parent(progress)
            return
        self.outbox.append(progress)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send_progress())

    async def _send_progress(self) -> None:
        """Deliver the outbox to the order one signal after the other (in order: the order
        applies each step of a line only after the one before it)."""
        while self.outbox:
            await self._signal_parent(self.outbox.pop(0))

    async def _signal_parent(self, progress: FulfillmentProgress) -> None:
        parent = workflow.info().parent
        assert parent is not None
        kind = progress.kind
        # by workflow id: after a continue-as-new the order's newest run gets it
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        try:
            await handle.signal("fulfillment_progress", progress)
        except ApplicationError as err:
            # the order was terminated (or failed): nobody to tell; the reservation
            # reconciler settles this release's stock
            workflow.logger.warning("order %s did not take %s: %s", parent.workflow_id, kind, err)

    # ------------------------------------------------------------------ parent → child
    @workflow.signal
    def cancel_lines(self, request: CancelLinesInput) -> None:
        if len(request.line_ids) > len(self.line_ids):
            workflow.logger.warning("cancel_lines ignored: more lines than the release has")
            return
        if len(self.cancel_requests) >= 10:
            # many requests before the next step: kept as one, so memory stays bounded
            merged = [lid for r in self.cancel_requests for lid in r.line_ids]
            reason = self.cancel_requests[0].reason
            self.cancel_requests = [
                CancelLinesInput(line_ids=list(dict.fromkeys(merged)), reason=reason)
            ]
        self.cancel_requests.append(request)

    # ------------------------------------------------------------------ store reports
    # Updates for the API (the store learns at once whether its report counted);
    # signals of the same name logic for the Temporal UI and CLI.
    def _check_pick(self, report: PickReport) -> None:
        if not self._live_lines():
            raise ApplicationError(
                "the shipment was cancelled", type="NotPending", non_retryable=True
            )
        if self.pick_report is not None or self.status != ShipmentStatus.OPEN:
            raise ApplicationError(
                "the pick of this shipment is already reported",
                type="NotPending",
                non_retryable=True,
            )
        ordered = {line.line_id: line.quantity for line in self.input.lines}
        for picked in report.lines:
            if picked.line_id not in ordered:
                raise ApplicationError(
                    f"line {picked.line_id} is not in this shipment",
                    type="UnknownLine",
                    non_retryable=True,
                )
            if picked.picked_quantity > ordered[picked.line_id]:
                raise ApplicationError(
                    f"line {picked.line_id}: picked {picked.picked_quantity} of "
                    f"{ordered[picked.line_id]} released",
                    type="InvalidQuantity",
                    non_retryable=True,
                )

    def _check_ship(self, report: ShipReport) -> None:
        if self.status != ShipmentStatus.PICKED or self.ship_report is not None:
            raise ApplicationError(
                f"shipment is {self.status.value}, not PICKED",
                type="NotPending",
                non_retryable=True,
            )
        if not any(self.picked.get(lid) for lid in self._live_lines()):
            raise ApplicationError(
                "nothing was picked, nothing to ship", type="NotPending", non_retryable=True
            )

    def _check_deliver(self, report: DeliverReport) -> None:
        # a TRANSFER release is delivered by the pickup store's hand-over, once received
        ready = ShipmentStatus.READY_FOR_PICKUP if self.input.transfer_to else None
        if (
            self.status != (ready or ShipmentStatus.SHIPPED)
            or self.delivery_report is not None
            or self.returned_report is not None
        ):
            raise ApplicationError(
                f"shipment is {self.status.value}, not {(ready or ShipmentStatus.SHIPPED).value}",
                type="NotPending",
                non_retryable=True,
            )

    def _check_receipt(self, report: ReceiveTransferReport) -> None:
        if not self.input.transfer_to:
            raise ApplicationError(
                "only a transfer is received", type="NotPending", non_retryable=True
            )
        if self.status != ShipmentStatus.SHIPPED or self.receipt_report is not None:
            raise ApplicationError(
                f"transfer is {self.status.value}, not SHIPPED (in transfer)",
                type="NotPending",
                non_retryable=True,
            )

    @workflow.update
    async def report_pick(self, report: PickReport) -> StoreReportResult:
        self.pick_report = report
        await workflow.wait_condition(lambda: self.status != ShipmentStatus.OPEN)
        if self.status == ShipmentStatus.CANCELLED:
            raise ApplicationError(
                "the shipment was cancelled", type="NotPending", non_retryable=True
            )
        return self._result()

    @report_pick.validator
    def _validate_pick(self, report: PickReport) -> None:
        self._check_pick(report)

    @workflow.update
    async def report_ship(self, report: ShipReport) -> StoreReportResult:
        self.ship_report = report
        await workflow.wait_condition(lambda: self.status != ShipmentStatus.PICKED)
        if self.status != ShipmentStatus.SHIPPED:
            raise ApplicationError(
                f"shipment ended {self.status.value}, not shipped",
                type="NotPending",
                non_retryable=True,
            )
        return self._result()

    @report_ship.validator
    def _validate_ship(self, report: ShipReport) -> None:
        self._check_ship(report)

    @workflow.update
    async def report_delivery(self, report: DeliverReport) -> StoreReportResult:
        self.delivery_report = report
        await workflow.wait_condition(
            lambda: self.status not in (ShipmentStatus.SHIPPED, ShipmentStatus.READY_FOR_PICKUP)
        )
        return self._result()

    @report_delivery.validator
    def _validate_delivery(self, report: DeliverReport) -> None:
        self._check_deliver(report)

    @workflow.update
    async def report_returned_to_sender(self, report: ReturnedToSenderReport) -> StoreReportResult:
        self.returned_report = report
        await workflow.wait_condition(lambda: self.status != ShipmentStatus.SHIPPED)
        return self._result()

    @workflow.update
    async def report_receipt(self, report: ReceiveTransferReport) -> StoreReportResult:
        """The pickup store has the transferred units (click and collect)."""
        self.receipt_report = report
        await workflow.wait_condition(lambda: self.status != ShipmentStatus.SHIPPED)
        return self._result()

    @report_receipt.validator
    def _validate_receipt(self, report: ReceiveTransferReport) -> None:
        self._check_receipt(report)

    @report_returned_to_sender.validator
    def _validate_returned(self, report: ReturnedToSenderReport) -> None:
        if self.input.transfer_to:
            raise ApplicationError(
                "a transfer to a pickup store is received there, not returned to sender",
                type="NotPending",
                non_retryable=True,
            )
        if self.status != ShipmentStatus.SHIPPED or self.returned_report is not None:
            raise ApplicationError(
                f"shipment is {self.status.value}, not SHIPPED",
                type="NotPending",
                non_retryable=True,
            )

    @workflow.signal
    def pick(self, report: PickReport) -> None:
        try:
            self._check_pick(report)
        except ApplicationError as err:
            workflow.logger.warning("pick signal ignored: %s", err)
            return
        self.pick_report = report

    @workflow.signal
    def ship(self, report: ShipReport) -> None:
        try:
            self._check_ship(report)
        except ApplicationError as err:
            workflow.logger.warning("ship signal ignored: %s", err)
            return
        self.ship_report = report

    @workflow.signal
    def deliver(self, report: DeliverReport) -> None:
        try:
            self._check_deliver(report)
        except ApplicationError as err:
            workflow.logger.warning("deliver signal ignored: %s", err)
            return
        self.delivery_report = report

    @workflow.signal
    def receive(self, report: ReceiveTransferReport) -> None:
        try:
            self._check_receipt(report)
        except ApplicationError as err:
            workflow.logger.warning("receive signal ignored: %s", err)
            return
        self.receipt_report = report

    @workflow.query
    def shipment_status(self) -> StoreReportResult:
        return self._result()

    def _result(self) -> StoreReportResult:
        key = self.input.shipment_key
        if self.input.transfer_to and self.status in (
            ShipmentStatus.READY_FOR_PICKUP,
            ShipmentStatus.DELIVERED,
        ):
            key = self.input.handover_key  # the pickup store's part from now on
        return StoreReportResult(shipment_key=key, status=self.status)
