"""Inventory side effects of an order: giving reservations back on cancel or decline."""

from __future__ import annotations

from temporalio import activity

from store import Store
from workflows.model import (
    CancelOrderInput,
    CancelOrderResult,
    ReleaseReservationsInput,
    ReleaseReservationsResult,
)


class InventoryActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="cancel_order_lines")
    async def cancel_order_lines(self, input: CancelOrderInput) -> CancelOrderResult:
        released = [rid for rid in input.reservation_ids if await self.store.inventory.release(rid)]
        if not input.lines:  # nothing was cancelled (e.g. the units shipped meanwhile)
            return CancelOrderResult(released=released)
        await self.store.orders.save_return(
            return_id=input.return_id,
            order_id=input.order_id,
            type="CANCEL",
            lines=[line.model_dump() for line in input.lines],
            status="DONE",
            reason=input.reason,
        )
        return CancelOrderResult(released=released)

    @activity.defn(name="release_reservations")
    async def release_reservations(
        self, input: ReleaseReservationsInput
    ) -> ReleaseReservationsResult:
        released = [rid for rid in input.reservation_ids if await self.store.inventory.release(rid)]
        return ReleaseReservationsResult(released=released)
