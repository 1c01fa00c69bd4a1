"""Returns: the store's record of each return, its documents (return label and return
note for the receiving location), what became of the received units, and the refund
notice to the channel (signed like every outgoing message)."""

from __future__ import annotations

import asyncio
import json

from temporalio import activity

from activities.documents import render_label, render_note, unknown_location
from activities.partners import Sender
from oms import ids
from store import Store
from store.receivers import location_receiver
from store.returns import DisposedUnits
from workflows.model import (
    DisposeReturnInput,
    DocumentView,
    LocationConfig,
    OpenReturnInput,
    OpenReturnResult,
    RefundNoticeInput,
    SettleReturnInput,
)


class ReturnActivities:
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    async def _location(self, location_id: str) -> LocationConfig:
        rows = await self.store.config.locations([location_id])
        return LocationConfig.model_validate(rows[0]) if rows else unknown_location(location_id)

    @activity.defn(name="open_return")
    async def open_return(self, request: OpenReturnInput) -> OpenReturnResult:
        ret = request.input
        await self.store.returns.open(
            return_id=ret.return_id,
            order_id=ret.order_id,
            sales_channel=ret.sales_channel,
            type=ret.type,
            lines=[{"line_id": i.line_id, "quantity": i.quantity} for i in ret.items],
            reason=request.reason,
            reason_code=ret.reason_code,
            location_id=ret.location_id,
            workflow_id=activity.info().workflow_id if activity.in_activity() else None,
            expires_at=ret.expires_at,
            currency=ret.currency,
        )
        docs: list[DocumentView] = []
        if ret.order is None:
            return OpenReturnResult(documents=docs)
        order = ret.order
        location = await self._location(ret.location_id)
        quantities = {i.line_id: i.quantity for i in ret.items}
        line_ids = [i.line_id for i in ret.items]
        for kind in ("return_label", "return_note"):
            if kind == "return_label":
                render = asyncio.to_thread(render_label, order, location, ret.return_id)
            else:
                render = asyncio.to_thread(
                    render_note,
                    kind,
                    order,
                    location,
                    line_ids,
                    ret.return_id,
                    ret.return_id,
                    quantities,
                )
            document_id = f"{ret.return_id}-{kind}"
            await self.store.orders.save_document(
                document_id=document_id,
                order_id=ret.order_id,
                location_id=ret.location_id,
                kind=kind,
                content=await render,
            )
            docs.append(
                DocumentView(
                    document_id=document_id,
                    location_id=ret.location_id,
                    kind=kind,
                    url=f"/v1/documents/{document_id}",
                )
            )
        return OpenReturnResult(documents=docs)

    @activity.defn(name="dispose_return")
    async def dispose_return(self, request: DisposeReturnInput) -> None:
        ret = request.input
        skus = {i.line_id: i.sku for i in ret.items}
        await self.store.returns.dispose(
            ret.return_id,
            ret.order_id,
            ret.location_id,
            [
                DisposedUnits(
                    line_id=line.line_id,
                    sku=skus[line.line_id],
                    quantity=line.quantity,
                    condition=line.condition,
                    disposition=line.disposition or ret.disposition,
                )
                for line in request.received
                if line.quantity > 0
            ],
        )

    @activity.defn(name="open_vendor_work_order")
    async def open_vendor_work_order(self, request: DisposeReturnInput) -> str | None:
        """A RETURN_TO_VENDOR work order for the units kept for the vendor, at the
        receiving location, sent to its webhook (signed) when it has one; its id."""
        ret = request.input
        skus = {i.line_id: i.sku for i in ret.items}
        items = [
            {"line_id": line.line_id, "sku": skus[line.line_id], "quantity": line.quantity}
            for line in request.received
            if line.quantity > 0 and line.disposition == "RETURN_TO_VENDOR"
        ]
        if not items:
            return None
        work_order_id = f"{ret.return_id}-RTV"
        await self.store.returns.vendor_work_orders.create(
            work_order_id,
            return_id=ret.return_id,
            order_id=ret.order_id,
            location_id=ret.location_id,
            items=items,
        )
        rows = await self.store.config.locations([ret.location_id])
        url = rows[0].get("webhook_url") if rows else None
        if url:
            message = {
                "type": "work_order",
                "kind": "RETURN_TO_VENDOR",
                "work_order_id": work_order_id,
                "return_id": ret.return_id,
                "order_id": ret.order_id,
                "location_id": ret.location_id,
                "items": items,
                "ship_path": f"/v1/work-orders/{work_order_id}/ship",
            }
            await self.sender.send(
                ret.location_id,
                location_receiver(ret.location_id),
                str(url),
                json.dumps(message, sort_keys=True).encode(),
                work_order_id,
            )
        return work_order_id

    @activity.defn(name="send_refund_notice")
    async def send_refund_notice(self, request: RefundNoticeInput) -> bool:
        """The refund the channel owes its customer, to the channel's callback (signed);
        nothing to send without a callback."""
        ret = request.input
        prices = {i.line_id: i.unit_price for i in ret.items}
        message = {
            "type": "refund_notice",
            "return_id": ret.return_id,
            "order_id": ret.order_id,
            "channel_order_id": ids.channel_order_id(ret.order_id),
            "reason_code": ret.reason_code,
            "lines": [
                {
                    "line_id": line.line_id,
                    "quantity": line.quantity,
                    "amount": str(prices[line.line_id] * line.quantity),
                }
                for line in request.received
                if line.quantity > 0
            ],
            "shipping_fee": str(ret.shipping_fee),
            "amount": str(request.refund_amount),
            "currency": ret.currency,
        }
        return await self.sender.to_channel(ret.sales_channel, message, f"{ret.return_id}-refund")

    @activity.defn(name="settle_return")
    async def settle_return(self, request: SettleReturnInput) -> None:
        outcome = request.outcome
        await self.store.returns.settle(
            outcome.return_id,
            status=outcome.status,
            received=[line.model_dump(mode="json") for line in outcome.received],
            refund_amount=outcome.refund_amount,
        )
