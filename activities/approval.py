"""Approval requests to third-party systems: signed JSON to each reason's webhook."""

from __future__ import annotations

import json

import aiohttp
from temporalio import activity

from activities.submission import SIGNATURE_HEADER, sign
from workflows.model import ApprovalNotice


class ApprovalActivities:
    def __init__(self, webhook_secret: str) -> None:
        self.webhook_secret = webhook_secret

    @activity.defn(name="notify_approvers")
    async def notify_approvers(self, notice: ApprovalNotice) -> None:
        """Idempotent per order, reason and kind: receivers dedupe on the Idempotency-Key."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for approval in notice.approvals:
                url = notice.webhooks.get(approval.reason)
                if not url:
                    continue
                body = json.dumps(
                    {
                        "type": f"approval_{notice.kind}",
                        "order_id": notice.order_id,
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
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    SIGNATURE_HEADER: sign(self.webhook_secret, body),
                }
                async with http.post(url, data=body, headers=headers) as resp:
                    resp.raise_for_status()  # retried with backoff by Temporal
