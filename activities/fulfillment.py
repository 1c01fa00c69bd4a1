"""Fulfillment stage: release, pick, ship, deliver and cancel of one location's release.

Each activity writes the release/shipment rows and moves the reservations in guarded
steps, so a retry after a crash changes nothing twice.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from store import Store
from workflows.fulfillment import fulfillment_workflow_id
from workflows.model import (
    CancelReleaseInput,
    RecordDeliveryInput,
    RecordPickInput,
    RecordReturnedToSenderInput,
    RecordShipInput,
    RecordTransferReceiptInput,
    ReleaseInput,
    TellsOrder,
)


async def tell_order(input: TellsOrder) -> None:
    """Signal the order this step's progress once the store has it (a retry signals
    again: the order applies each step of a release once)."""
    if input.progress is None or input.order_workflow_id is None:
        return
    # by workflow id: after a continue-as-new the order's newest run gets it
    order = activity.client().get_workflow_handle(input.order_workflow_id)
    try:
        await order.signal("fulfillment_progress", input.progress)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        # the order was terminated (or has ended): nobody to tell; the reservation
        # reconciler settles this release's stock
        activity.logger.warning(
            "order %s did not take %s: %s", input.order_workflow_id, input.progress.kind, err
        )


class FulfillmentActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="release_work_order")
    async def release_work_order(self, input: ReleaseInput) -> None:
        f = input.fulfillment
        seq = int(f.release_key.rsplit("-R", 1)[1])
        await self.store.fulfillment.release(
            order_id=f.order_id,
            location_id=f.location_id,
            release_key=f.release_key,
            shipment_key=f.shipment_key,
            workflow_id=fulfillment_workflow_id(f.order_id, seq),
            work_order_id=f.work_order_id,
            lines=[(line.line_id, line.quantity) for line in f.lines],
            at=input.at,
            handover=(f.handover_key, f.transfer_to) if f.transfer_to else None,
        )
        await tell_order(input)

    @activity.defn(name="record_pick")
    async def record_pick(self, input: RecordPickInput) -> dict[str, int]:
        """Returns the picked quantities as recorded. The first pick of a shipment counts:
        a release whose worker died after this wrote the store but before its workflow
        task completed takes the location's report again (perhaps another one), and
        then goes on with, and tells the order of, what the store holds."""
        for line in input.fulfillment.lines:
            if line.line_id in input.picked:
                await self.store.inventory.record_pick(
                    line.reservation_id, input.picked[line.line_id]
                )
        f = input.fulfillment
        held = await self.store.fulfillment.record_pick(
            f.shipment_key, input.picked, f.handover_key if f.transfer_to else None
        )
        recorded = {lid: held.get(lid, q) for lid, q in input.picked.items()}
        if input.progress is not None and recorded != input.picked:
            ordered = {line.line_id: line.quantity for line in f.lines}
            progress = input.progress.model_copy(
                update={
                    "quantities": recorded,
                    "backordered": {
                        lid: ordered[lid] - q for lid, q in recorded.items() if q < ordered[lid]
                    },
                }
            )
            input = input.model_copy(update={"progress": progress})
        await tell_order(input)
        return recorded

    @activity.defn(name="record_ship")
    async def record_ship(self, input: RecordShipInput) -> None:
        for line in input.fulfillment.lines:
            if line.line_id in input.shipped:
                await self.store.inventory.consume(line.reservation_id)
        await self.store.fulfillment.record_ship(
            input.fulfillment.shipment_key, input.carrier, input.tracking_number
        )
        await tell_order(input)

    @activity.defn(name="record_transfer_receipt")
    async def record_transfer_receipt(self, input: RecordTransferReceiptInput) -> None:
        f = input.fulfillment
        await self.store.fulfillment.record_transfer_receipt(f.shipment_key, f.handover_key)
        await tell_order(input)

    @activity.defn(name="record_delivery")
    async def record_delivery(self, input: RecordDeliveryInput) -> None:
        f = input.fulfillment
        # a TRANSFER release is delivered by the pickup store's hand-over
        await self.store.fulfillment.record_delivery(
            f.handover_key if f.transfer_to else f.shipment_key
        )
        await tell_order(input)

    @activity.defn(name="record_returned_to_sender")
    async def record_returned_to_sender(self, input: RecordReturnedToSenderInput) -> None:
        await self.store.fulfillment.record_returned_to_sender(input.fulfillment.shipment_key)
        await tell_order(input)

    @activity.defn(name="cancel_release")
    async def cancel_release(self, input: CancelReleaseInput) -> None:
        for line in input.fulfillment.lines:
            if line.line_id in input.line_ids:
                await self.store.inventory.release(line.reservation_id)
        f = input.fulfillment
        await self.store.fulfillment.cancel(
            f.shipment_key,
            f.work_order_id,
            input.line_ids,
            f.handover_key if f.transfer_to else None,
        )
        await tell_order(input)
