"""Submission stage: a work order per location, sent to the location's webhook when it has
one (JSON signed with the location's secret, idempotency key), else waiting in the
location's work-order list; and the signed cancellation of a work order a location was
sent.

A partner's answer decides what happens next (activities/partners.py): a refusal (4xx)
holds the order until an operator resumes it; a technical failure is retried."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.partners import Sender
from oms import ids
from store import Store
from store.receivers import location_receiver
from workflows.fulfillment import fulfillment_workflow_id
from workflows.model import (
    HANDOVER_SUFFIX,
    ReleasePlan,
    SendWorkOrderInput,
    SendWorkOrderResult,
    SubmitWorkOrdersInput,
    SubmitWorkOrdersResult,
    WorkOrderCancelledInput,
    WorkOrderView,
    handover_key,
)


def work_order_message(order_id: str, plan: ReleasePlan) -> dict[str, Any]:
    message = {
        "type": "work_order",
        "kind": "TRANSFER" if plan.transfer_to else "PACKAGING",
        "work_order_id": plan.work_order_id,
        "order_id": order_id,
        "channel_order_id": ids.channel_order_id(order_id),
        "location_id": plan.location_id,
        "shipment_key": plan.shipment_key,
        "line_ids": plan.line_ids,
    }
    if plan.transfer_to:
        message["destination_id"] = plan.transfer_to
    return message


def handover_message(order_id: str, plan: ReleasePlan) -> dict[str, Any]:
    """The pickup store's part of a TRANSFER release: hand the units over once the
    transfer has arrived (received at POST /v1/work-orders/{id}/receive)."""
    assert plan.transfer_to is not None
    return {
        "type": "work_order",
        "kind": "PACKAGING",
        "work_order_id": handover_work_order(plan),
        "order_id": order_id,
        "channel_order_id": ids.channel_order_id(order_id),
        "location_id": plan.transfer_to,
        "shipment_key": handover_key(plan.shipment_key),
        "line_ids": plan.line_ids,
        "status": "AWAITING_TRANSFER",
        "transfer_from": plan.location_id,
        "transfer_work_order_id": plan.work_order_id,
    }


def handover_work_order(plan: ReleasePlan) -> str:
    return plan.work_order_id + HANDOVER_SUFFIX


def work_order_views(plan: ReleasePlan) -> list[WorkOrderView]:
    """A release's work orders: one, or a TRANSFER and the pickup store's hand-over."""
    if not plan.transfer_to:
        return [
            WorkOrderView(
                work_order_id=plan.work_order_id,
                location_id=plan.location_id,
                line_ids=plan.line_ids,
            )
        ]
    return [
        WorkOrderView(
            work_order_id=plan.work_order_id,
            location_id=plan.location_id,
            line_ids=plan.line_ids,
            kind="TRANSFER",
            destination_id=plan.transfer_to,
        ),
        WorkOrderView(
            work_order_id=handover_work_order(plan),
            location_id=plan.transfer_to,
            line_ids=plan.line_ids,
        ),
    ]


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

    async def _release(self, order_id: str, plan: ReleasePlan, at: datetime) -> None:
        """The release's rows and its empty shipment (the location can report on it from
        now on), as the release's own first step wrote them before (release_work_order;
        written once: a retry changes nothing)."""
        quantities = plan.quantities
        await self.store.fulfillment.release(
            order_id=order_id,
            location_id=plan.location_id,
            release_key=plan.release_key,
            shipment_key=plan.shipment_key,
            workflow_id=fulfillment_workflow_id(order_id, plan.seq),
            work_order_id=plan.work_order_id,
            lines=[(line_id, quantities[line_id]) for line_id in plan.line_ids],
            at=at,
            handover=(handover_key(plan.shipment_key), plan.transfer_to)
            if plan.transfer_to
            else None,
        )

    @activity.defn(name="submit_work_orders")
    async def submit_work_orders(self, input: SubmitWorkOrdersInput) -> SubmitWorkOrdersResult:
        views = [view for plan in input.releases for view in work_order_views(plan)]
        await self.store.fulfillment.save_work_orders(
            input.order_id,
            [(v.work_order_id, v.location_id, v.line_ids) for v in views],
            kinds={v.work_order_id: v.kind for v in views if v.kind != "PACKAGING"},
            destinations={v.work_order_id: v.destination_id for v in views if v.destination_id},
        )
        if input.release_at is not None:
            for plan in input.releases:
                await self._release(input.order_id, plan, input.release_at)
        sent: list[str] = []
        to_send: list[str] = []
        for plan in input.releases:
            if activity.in_activity():
                activity.heartbeat(plan.work_order_id)  # a dead worker is noticed quickly
            messages = await self._messages(input.order_id, plan)
            if not messages:
                continue
            if not input.send_webhooks:
                to_send.append(plan.work_order_id)
                continue
            for location_id, url, message in messages:
                await self._post(location_id, url, message, message["work_order_id"])
            sent.append(plan.work_order_id)
        return SubmitWorkOrdersResult(work_orders=views, sent_to_webhook=sent, to_send=to_send)

    async def _messages(
        self, order_id: str, plan: ReleasePlan
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(location, webhook, message) for each location of this release with a webhook:
        the work order, and a TRANSFER's hand-over to the pickup store."""
        found: list[tuple[str, str, dict[str, Any]]] = []
        url = await self._webhook(plan.location_id)
        if url:
            found.append((plan.location_id, url, work_order_message(order_id, plan)))
        if plan.transfer_to:
            store_url = await self._webhook(plan.transfer_to)
            if store_url:
                found.append((plan.transfer_to, store_url, handover_message(order_id, plan)))
        return found

    @activity.defn(name="send_work_order")
    async def send_work_order(self, input: SendWorkOrderInput) -> SendWorkOrderResult:
        plan = input.release
        messages = await self._messages(input.order_id, plan)
        if not messages:
            return SendWorkOrderResult(sent=False)
        if await self.store.fulfillment.work_order_status(plan.work_order_id) == "CANCELLED":
            return SendWorkOrderResult(cancelled=True)  # a cancel came first: send nothing
        for location_id, url, message in messages:
            await self._post(location_id, url, message, message["work_order_id"])
        if plan.transfer_to:
            await self.store.fulfillment.mark_work_order_sent(handover_work_order(plan))
        if await self.store.fulfillment.mark_work_order_sent(plan.work_order_id) == "CANCELLED":
            # the cancel overtook this message on its way: every location it went to (the
            # warehouse and, for a transfer, the pickup store) hears of it at once
            for location_id, url, message in messages:
                await self._post(
                    location_id,
                    url,
                    {
                        "type": "work_order_cancelled",
                        "work_order_id": message["work_order_id"],
                        "order_id": input.order_id,
                        "channel_order_id": ids.channel_order_id(input.order_id),
                        "location_id": location_id,
                        "shipment_key": message["shipment_key"],
                        "line_ids": plan.line_ids,
                        "reason": "cancelled while the work order was being sent",
                    },
                    f"{message['work_order_id']}:cancel:all",
                )
        return SendWorkOrderResult(sent=True)

    @activity.defn(name="notify_work_order_cancelled")
    async def notify_work_order_cancelled(self, input: WorkOrderCancelledInput) -> bool:
        """Tell a location that was sent a work order that these lines of it are cancelled
        (signed like the work order; the idempotency key names the lines)."""
        lines = sorted(input.line_ids)
        told = False
        targets = [(input.location_id, input.work_order_id, input.shipment_key)]
        if input.transfer_to:  # the pickup store waiting for the transfer hears it too
            targets.append(
                (
                    input.transfer_to,
                    input.work_order_id + HANDOVER_SUFFIX,
                    handover_key(input.shipment_key),
                )
            )
        for location_id, work_order_id, shipment_key in targets:
            url = await self._webhook(location_id)
            if not url:
                continue
            await self._post(
                location_id,
                url,
                {
                    "type": "work_order_cancelled",
                    "work_order_id": work_order_id,
                    "order_id": input.order_id,
                    "channel_order_id": ids.channel_order_id(input.order_id),
                    "location_id": location_id,
                    "shipment_key": shipment_key,
                    "line_ids": lines,
                    "reason": input.reason,
                },
                f"{work_order_id}:cancel:{','.join(lines)}",
            )
            told = True
        return told
