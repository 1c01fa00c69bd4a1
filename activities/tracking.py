"""Tracking: each new tracking event of a shipment goes to the channel's callback as a
status update (signed like every outgoing message)."""

from __future__ import annotations

from temporalio import activity

from activities.partners import Sender
from oms import ids
from store import Store
from workflows.model import TrackingNotice


class TrackingActivities:
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    @activity.defn(name="send_tracking_update")
    async def send_tracking_update(self, notice: TrackingNotice) -> bool:
        update = notice.update
        message = {
            "type": "tracking_update",
            "order_id": notice.order_id,
            "channel_order_id": ids.channel_order_id(notice.order_id),
            "shipment_key": update.shipment_key,
            "event_id": update.event_id,
            "status": update.status,
            "at": update.at.isoformat(),
            "place": update.place,
            "detail": update.detail,
            "location_id": update.location_id,
            "carrier": update.carrier,
            "tracking_number": update.tracking_number,
        }
        return await self.sender.to_channel(
            notice.sales_channel, message, f"{update.shipment_key}-tracking-{update.event_id}"
        )
