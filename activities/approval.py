"""Approval requests to third-party systems: JSON to each reason's webhook, signed with
that receiver's secret (activities/partners.py)."""

from __future__ import annotations

import json

from temporalio import activity

from activities.partners import Sender
from oms import ids
from store import Store
from store.receivers import approval_receiver
from workflows.model import ApprovalNotice


class ApprovalActivities:
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    @activity.defn(name="notify_approvers")
    async def notify_approvers(self, notice: ApprovalNotice) -> None:
        """Idempotent per order, reason and kind: receivers dedupe on the Idempotency-Key.
        A refusal (4xx) or a forbidden target ends the notice (the order's audit trail
        shows it); anything else is retried with backoff."""
        channel_id = ""
        if any(notice.webhooks.get(a.reason) for a in notice.approvals):
            # the receiver is the channel's approval reason: the notice names the order
            row = await self.store.orders.get(notice.order_id)
            channel_id = row.sales_channel if row is not None else ""
        for approval in notice.approvals:
            url = notice.webhooks.get(approval.reason)
            if not url:
                continue
            body = json.dumps(
                {
                    "type": f"approval_{notice.kind}",
                    "order_id": notice.order_id,
                    "channel_order_id": ids.channel_order_id(notice.order_id),
                    "reason": approval.reason,
                    "rank": approval.rank,
                    "approvers": approval.approvers,
                    "decision_path": f"/v1/orders/{notice.order_id}/approvals",
                },
                sort_keys=True,
            ).encode()
            key = f"{notice.order_id}-{approval.reason}-{notice.kind}"
            if approval.escalated:
                key += "-escalated"
            await self.sender.send(
                f"approval system for {approval.reason}",
                approval_receiver(channel_id, approval.reason),
                url,
                body,
                key,
            )
