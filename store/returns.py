"""Returns: units coming back, whatever the cause (a cancel before shipping, a customer's
return, a parcel the carrier brings back), in one table and one list.

The order and return workflows own the truth; these rows are written idempotently by
their activities (keyed by return id), so a retried activity changes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from store.database import Database, utcnow
from store.inventory import InventoryRepository
from store.tables import (
    InventoryAdjustment,
    Order,
    Return,
    ReturnDisposition,
    WorkOrder,
)


@dataclass(frozen=True)
class ReturnRow:
    return_id: str
    order_id: str
    type: str
    status: str
    lines: list[dict[str, Any]]
    reason: str
    created_at: datetime
    sales_channel: str | None
    location_id: str | None
    reason_code: str | None
    workflow_id: str | None
    expires_at: datetime | None
    received: list[dict[str, Any]]
    refund_amount: Decimal | None
    currency: str | None
    updated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "return_id": self.return_id,
            "order_id": self.order_id,
            "type": self.type,
            "status": self.status,
            "lines": self.lines,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "location_id": self.location_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "received": self.received,
            "refund_amount": None if self.refund_amount is None else str(self.refund_amount),
            "currency": self.currency,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class DisposedUnits:
    line_id: str
    sku: str
    quantity: int
    condition: str
    disposition: str  # RESTOCK, DISCARD, RETURN_TO_VENDOR


class ReturnRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.vendor_work_orders = VendorWorkOrders(db)
        self.inventory = InventoryRepository(db)

    async def open(
        self,
        *,
        return_id: str,
        order_id: str,
        sales_channel: str,
        type: str,
        lines: list[dict[str, Any]],
        reason: str,
        reason_code: str | None,
        location_id: str | None,
        workflow_id: str | None,
        expires_at: datetime | None,
        currency: str,
    ) -> None:
        """Record a return as OPEN (once: a repeat changes nothing)."""
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(Return)
                .values(
                    return_id=return_id,
                    order_id=order_id,
                    sales_channel=sales_channel,
                    type=type,
                    lines=lines,
                    status="OPEN",
                    reason=reason,
                    reason_code=reason_code,
                    location_id=location_id,
                    workflow_id=workflow_id,
                    expires_at=expires_at,
                    received=[],
                    currency=currency,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["return_id"])
            )

    async def settle(
        self,
        return_id: str,
        *,
        status: str,
        received: list[dict[str, Any]],
        refund_amount: Decimal | None,
    ) -> None:
        """An OPEN return becomes RECEIVED or EXPIRED (a settled one stays as it is)."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Return)
                .where(Return.return_id == return_id, Return.status == "OPEN")
                .values(
                    status=status,
                    received=received,
                    refund_amount=refund_amount,
                    updated_at=utcnow(),
                )
            )

    async def dispose(
        self, return_id: str, order_id: str, location_id: str, units: list[DisposedUnits]
    ) -> None:
        """Write what became of the received units, once per return, line and disposition;
        restocked units go back into the location's stock in the same transaction."""
        now = utcnow()
        async with self.db.transaction() as session:
            for unit in units:
                if unit.quantity <= 0:
                    continue
                inserted = await session.execute(
                    self.db.insert(ReturnDisposition)
                    .values(
                        return_id=return_id,
                        line_id=unit.line_id,
                        disposition=unit.disposition,
                        order_id=order_id,
                        location_id=location_id,
                        sku=unit.sku,
                        quantity=unit.quantity,
                        condition=unit.condition,
                        created_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["return_id", "line_id", "disposition"])
                )
                if unit.disposition != "RESTOCK" or inserted.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                await session.execute(
                    self.db.insert(InventoryAdjustment).values(
                        adjustment_id=f"{return_id}:{unit.line_id}:restock",
                        location_id=location_id,
                        sku=unit.sku,
                        delta=unit.quantity,
                        reason=f"return {return_id}: {unit.quantity} x {unit.sku} restocked",
                        created_at=now,
                    )
                )
                await self.inventory.add_on_hand(session, location_id, unit.sku, unit.quantity, now)

    async def dispositions(self, return_id: str) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(ReturnDisposition)
                .where(ReturnDisposition.return_id == return_id)
                .order_by(ReturnDisposition.line_id, ReturnDisposition.disposition)
            )
            return [
                {
                    "line_id": r.line_id,
                    "sku": r.sku,
                    "quantity": r.quantity,
                    "condition": r.condition,
                    "disposition": r.disposition,
                    "location_id": r.location_id,
                }
                for r in rows.scalars()
            ]

    async def get(self, return_id: str) -> ReturnRow | None:
        async with self.db.sessions() as session:
            row = await session.get(Return, return_id)
            return _row(row) if row else None

    async def search(
        self,
        *,
        order_id: str | None = None,
        sales_channel: str | None = None,
        location_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ReturnRow], int]:
        query = select(Return)
        if order_id is not None:
            query = query.where(Return.order_id == order_id)
        if sales_channel is not None:
            # CANCEL returns do not name their channel: their order does
            query = query.join(Order, Order.order_id == Return.order_id).where(
                Order.sales_channel == sales_channel
            )
        if location_id is not None:
            query = query.where(Return.location_id == location_id)
        if status is not None:
            query = query.where(Return.status == status)
        async with self.db.sessions() as session:
            total = (
                await session.execute(select(func.count()).select_from(query.subquery()))
            ).scalar_one()
            rows = await session.execute(
                query.order_by(Return.created_at, Return.return_id).limit(limit).offset(offset)
            )
            return [_row(r) for r in rows.scalars()], int(total)


def _row(row: Return) -> ReturnRow:
    return ReturnRow(
        return_id=row.return_id,
        order_id=row.order_id,
        type=row.type,
        status=row.status,
        lines=list(row.lines or []),
        reason=row.reason or "",
        created_at=row.created_at,
        sales_channel=row.sales_channel,
        location_id=row.location_id,
        reason_code=row.reason_code,
        workflow_id=row.workflow_id,
        expires_at=row.expires_at,
        received=list(row.received or []),
        refund_amount=None if row.refund_amount is None else Decimal(row.refund_amount),
        currency=row.currency,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class VendorWorkOrder:
    """A RETURN_TO_VENDOR work order: returned units the location sends to the vendor."""

    work_order_id: str
    return_id: str
    order_id: str
    location_id: str
    status: str  # OPEN, SHIPPED
    items: list[dict[str, Any]]
    created_at: datetime
    carrier: str | None
    tracking_number: str | None
    updated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "work_order_id": self.work_order_id,
            "kind": "RETURN_TO_VENDOR",
            "status": self.status,
            "location_id": self.location_id,
            "return_id": self.return_id,
            "order_id": self.order_id,
            "items": self.items,
            "created_at": self.created_at.isoformat(),
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class VendorWorkOrders:
    """RETURN_TO_VENDOR work orders in the work_orders table (kind RETURN_TO_VENDOR)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        work_order_id: str,
        *,
        return_id: str,
        order_id: str,
        location_id: str,
        items: list[dict[str, Any]],
    ) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(WorkOrder)
                .values(
                    work_order_id=work_order_id,
                    order_id=order_id,
                    location_id=location_id,
                    line_ids=sorted({i["line_id"] for i in items}),
                    status="OPEN",
                    created_at=now,
                    kind="RETURN_TO_VENDOR",
                    return_id=return_id,
                    items=items,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["work_order_id"])
            )

    async def get(self, work_order_id: str) -> VendorWorkOrder | None:
        async with self.db.sessions() as session:
            row = await session.get(WorkOrder, work_order_id)
            return _vendor(row) if row is not None and row.kind == "RETURN_TO_VENDOR" else None

    async def ship(self, work_order_id: str, carrier: str, tracking_number: str) -> bool:
        """OPEN -> SHIPPED; False when it was shipped before (a repeat changes nothing)."""
        async with self.db.transaction() as session:
            done = await session.execute(
                update(WorkOrder)
                .where(
                    WorkOrder.work_order_id == work_order_id,
                    WorkOrder.kind == "RETURN_TO_VENDOR",
                    WorkOrder.status == "OPEN",
                )
                .values(
                    status="SHIPPED",
                    carrier=carrier,
                    tracking_number=tracking_number,
                    updated_at=utcnow(),
                )
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def of_location(
        self, location_id: str, statuses: list[str] | None, limit: int, offset: int
    ) -> tuple[list[VendorWorkOrder], int]:
        query = select(WorkOrder).where(
            WorkOrder.location_id == location_id, WorkOrder.kind == "RETURN_TO_VENDOR"
        )
        query = query.where(WorkOrder.status.in_(statuses or ["OPEN"]))
        async with self.db.sessions() as session:
            total = (
                await session.execute(select(func.count()).select_from(query.subquery()))
            ).scalar_one()
            rows = await session.execute(
                query.order_by(WorkOrder.created_at.desc(), WorkOrder.work_order_id)
                .limit(limit)
                .offset(offset)
            )
            return [_vendor(r) for r in rows.scalars()], int(total)


def _vendor(row: WorkOrder) -> VendorWorkOrder:
    return VendorWorkOrder(
        work_order_id=row.work_order_id,
        return_id=row.return_id or "",
        order_id=row.order_id,
        location_id=row.location_id,
        status=row.status,
        items=list(row.items or []),
        created_at=row.created_at,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
        updated_at=row.updated_at,
    )
