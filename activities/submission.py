"""Submission stage: a work order per location, sent to the location's webhook when it has
one (JSON signed with the location's secret, idempotency key), else waiting in the
location's work-order list; and the signed cancellation of a work order a location was
sent.

A partner's answer decides what happens next (activities/partners.py): a refusal (4xx)
holds the order until an operator resumes it; a technical failure is retried."""

from __future__ import annotations

import json
from typing import Any

from temporalio import activity

from activities.partners import Sender
from oms import ids
from store import Store
from store.receivers import location_receiver
from workflows.model import (
    ReleasePlan,
    SendWorkOrderInput,
    SendWorkOrderResult,
    SubmitWorkOrdersInput,
    SubmitWorkOrdersResult,
    WorkOrderCancelledInput,
    WorkOrderView,
)


def work_order_message(order_id: str, plan: ReleasePlan) -> dict[str, Any]:
    return {
        "type": "work_order",
        "work_order_id": plan.work_order_id,
        "order_id": order_id,
        "channel_order_id": ids.channel_order_id(order_id),
        "location_id": plan.location_id,
        "shipment_key": plan.shipment_key,
        "line_ids": plan.line_ids,
    }


class SubmissionActivities:
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    async def _webhook(self, location_id: str) -> str | None:
        found = await self.store.config.locations([location_id])
        url = found[0].get("webhook_url") if found else None
        return str(url) if url else None

    async def _post(
        self, location_id: str, url: str, message: dict[str, Any], idempotency_key: str
    ) -> None:
        body = json.dumps(message, sort_keys=True).encode()
        await self.sender.send(
            location_id, location_receiver(location_id), url, body, idempotency_key
        )

    @activity.defn(name="submit_work_orders")
    async def submit_work_orders(self, input: SubmitWorkOrdersInput) -> SubmitWorkOrdersResult:
        await self.store.fulfillment.save_work_orders(
            input.order_id,
            [(p.work_order_id, p.location_id, p.line_ids) for p in input.releases],
        )
        sent: list[str] = []
        to_send: list[str] = []
        for plan in input.releases:
            if activity.in_activity():
                activity.heartbeat(plan.work_order_id)  # a dead worker is noticed quickly
            url = await self._webhook(plan.location_id)
            if not url:
                continue
            if not input.send_webhooks:
                to_send.append(plan.work_order_id)
                continue
            await self._post(
                plan.location_id,
                url,
                work_order_message(input.order_id, plan),
                plan.work_order_id,
            )
            sent.append(plan.work_order_id)
        return SubmitWorkOrdersResult(
            work_orders=[
                WorkOrderView(
                    work_order_id=p.work_order_id, location_id=p.location_id, line_ids=p.line_ids
                )
                for p in input.releases
            ],
            sent_to_webhook=sent,
            to_send=to_send,
        )

    @activity.defn(name="send_work_order")
    async def send_work_order(self, input: SendWorkOrderInput) -> SendWorkOrderResult:
        plan = input.release
        url = await self._webhook(plan.location_id)
        if not url:
            return SendWorkOrderResult(sent=False)
        if await self.store.fulfillment.work_order_status(plan.work_order_id) == "CANCELLED":
            return SendWorkOrderResult(cancelled=True)  # a cancel came first: send nothing
        await self._post(
            plan.location_id, url, work_order_message(input.order_id, plan), plan.work_order_id
        )
        if await self.store.fulfillment.mark_work_order_sent(plan.work_order_id) == "CANCELLED":
            # the cancel overtook this message on its way: the location hears of it at once
            await self._post(
                plan.location_id,
                url,
                {
                    "type": "work_order_cancelled",
                    "work_order_id": plan.work_order_id,
                    "order_id": input.order_id,
                    "channel_order_id": ids.channel_order_id(input.order_id),
                    "location_id": plan.location_id,
                    "shipment_key": plan.shipment_key,
                    "line_ids": plan.line_ids,
                    "reason": "cancelled while the work order was being sent",
                },
                f"{plan.work_order_id}:cancel:all",
            )
        return SendWorkOrderResult(sent=True)

    @activity.defn(name="notify_work_order_cancelled")
    async def notify_work_order_cancelled(self, input: WorkOrderCancelledInput) -> bool:
        """Tell a location that was sent a work order that these lines of it are cancelled
        (signed like the work order; the idempotency key names the lines)."""
        url = await self._webhook(input.location_id)
        if not url:
            return False
        lines = sorted(input.line_ids)
        await self._post(
            input.location_id,
            url,
            {
                "type": "work_order_cancelled",
                "work_order_id": input.work_order_id,
                "order_id": input.order_id,
                "channel_order_id": ids.channel_order_id(input.order_id),
                "location_id": input.location_id,
                "shipment_key": input.shipment_key,
                "line_ids": lines,
                "reason": input.reason,
            },
            f"{input.work_order_id}:cancel:{','.join(lines)}",
        )
        return True
