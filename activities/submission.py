"""Submission stage: a work order per location, sent to the location's webhook when it has
one (JSON, HMAC-SHA256 signature, idempotency key; retried with backoff by Temporal),
else waiting in the location's work-order list."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
from temporalio import activity

from store import Store
from workflows.model import SubmitWorkOrdersInput, SubmitWorkOrdersResult, WorkOrderView

SIGNATURE_HEADER = "X-OMS-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SubmissionActivities:
    def __init__(self, store: Store, webhook_secret: str) -> None:
        self.store = store
        self.webhook_secret = webhook_secret

    @activity.defn(name="submit_work_orders")
    async def submit_work_orders(self, input: SubmitWorkOrdersInput) -> SubmitWorkOrdersResult:
        await self.store.fulfillment.save_work_orders(
            input.order_id,
            [(p.work_order_id, p.location_id, p.line_ids) for p in input.releases],
        )
        locations = {
            loc["location_id"]: loc
            for loc in await self.store.config.locations(
                sorted({p.location_id for p in input.releases})
            )
        }
        sent: list[str] = []
        for plan in input.releases:
            url = locations.get(plan.location_id, {}).get("webhook_url")
            if not url:
                continue
            body = json.dumps(
                {
                    "type": "work_order",
                    "work_order_id": plan.work_order_id,
                    "order_id": input.order_id,
                    "location_id": plan.location_id,
                    "shipment_key": plan.shipment_key,
                    "line_ids": plan.line_ids,
                },
                sort_keys=True,
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": plan.work_order_id,
                SIGNATURE_HEADER: sign(self.webhook_secret, body),
            }
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.post(url, data=body, headers=headers) as resp:
                    resp.raise_for_status()
            sent.append(plan.work_order_id)
        return SubmitWorkOrdersResult(
            work_orders=[
                WorkOrderView(
                    work_order_id=p.work_order_id, location_id=p.location_id, line_ids=p.line_ids
                )
                for p in input.releases
            ],
            sent_to_webhook=sent,
        )
