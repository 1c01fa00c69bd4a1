"""Work orders, releases and shipments.

`order_releases` holds one row per (release_key, line); for each line exactly one row
has status_quantity = 1: its current release. A re-release (after a backorder) sets
the older rows of that line to 0 in the same transaction that writes the new one.
`shipments` holds one row per (shipment_key, line) with quantity 0 until it ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update

from store.database import Database, utcnow
from store.tables import OrderRelease, Shipment, WorkOrder


@dataclass
class ShipmentLine:
    line_id: str
    released_quantity: int
    picked_quantity: int
    quantity: int
    status: str


@dataclass
class ShipmentRecord:
    shipment_key: str
    release_key: str
    order_id: str
    location_id: str
    workflow_id: str
    carrier: str | None
    tracking_number: str | None
    lines: list[ShipmentLine] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {line.status for line in self.lines}
        for status in ("OPEN", "PICKED", "SHIPPED", "DELIVERED"):
            if status in statuses:
                return status
        return next(iter(statuses), "CANCELLED")


@dataclass(frozen=True)
class ReleaseRow:
    release_key: str
    line_id: str
    location_id: str
    quantity: int
    status: str
    status_quantity: int
    created_at: datetime


class FulfillmentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save_work_orders(
        self, order_id: str, work_orders: list[tuple[str, str, list[str]]]
    ) -> None:
        async with self.db.transaction() as session:
            for work_order_id, location_id, line_ids in work_orders:
                await session.execute(
                    self.db.insert(WorkOrder)
                    .values(
                        work_order_id=work_order_id,
                        order_id=order_id,
                        location_id=location_id,
                        line_ids=line_ids,
                        status="SUBMITTED",
                        created_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=["work_order_id"])
                )

    async def work_order_status(self, work_order_id: str) -> str | None:
        async with self.db.sessions() as session:
            row = await session.get(WorkOrder, work_order_id)
            return row.status if row else None

    async def mark_work_order_sent(self, work_order_id: str) -> str | None:
        """SUBMITTED -> SENT once its webhook took it; returns the status after (CANCELLED
        when a cancel overtook the sending, so the caller tells the location)."""
        async with self.db.transaction() as session:
            await session.execute(
                update(WorkOrder)
                .where(WorkOrder.work_order_id == work_order_id, WorkOrder.status == "SUBMITTED")
                .values(status="SENT")
            )
            row = await session.get(WorkOrder, work_order_id, populate_existing=True)
            return row.status if row else None

    async def release(
        self,
        *,
        order_id: str,
        location_id: str,
        release_key: str,
        shipment_key: str,
        workflow_id: str,
        work_order_id: str,
        lines: list[tuple[str, int]],
        at: datetime,
    ) -> bool:
        """Write the release and its empty shipment; False when already written."""
        async with self.db.transaction() as session:
            done = await session.execute(
                select(OrderRelease.release_key)
                .where(OrderRelease.release_key == release_key)
                .limit(1)
            )
            if done.first() is not None:
                return False
            line_ids = [line_id for line_id, _ in lines]
            await session.execute(
                update(OrderRelease)
                .where(
                    OrderRelease.order_id == order_id,
                    OrderRelease.line_id.in_(line_ids),
                    OrderRelease.status_quantity == 1,
                )
                .values(status_quantity=0)
            )
            for line_id, qty in lines:
                session.add(
                    OrderRelease(
                        release_key=release_key,
                        line_id=line_id,
                        order_id=order_id,
                        location_id=location_id,
                        quantity=qty,
                        status="RELEASED",
                        status_quantity=1,
                        created_at=at,
                    )
                )
                session.add(
                    Shipment(
                        shipment_key=shipment_key,
                        line_id=line_id,
                        release_key=release_key,
                        order_id=order_id,
                        location_id=location_id,
                        workflow_id=workflow_id,
                        released_quantity=qty,
                        picked_quantity=0,
                        quantity=0,
                        status="OPEN",
                        updated_at=at,
                    )
                )
            await session.execute(
                update(WorkOrder)
                .where(WorkOrder.work_order_id == work_order_id)
                .values(status="RELEASED")
            )
            return True

    async def record_pick(self, shipment_key: str, picked: dict[str, int]) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            rows = await self._rows(session, shipment_key)
            for row in rows:
                if row.status != "OPEN" or row.line_id not in picked:
                    continue
                qty = picked[row.line_id]
                row.picked_quantity = qty
                row.status = "PICKED" if qty > 0 else "BACKORDERED"
                row.updated_at = now
                await self._set_release(session, row, "PICKED" if qty > 0 else "BACKORDERED")

    async def record_ship(self, shipment_key: str, carrier: str, tracking_number: str) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            for row in await self._rows(session, shipment_key):
                if row.status != "PICKED":
                    continue
                row.quantity = row.picked_quantity
                row.status = "SHIPPED"
                row.carrier = carrier
                row.tracking_number = tracking_number
                row.updated_at = now
                await self._set_release(session, row, "SHIPPED")

    async def record_delivery(self, shipment_key: str) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            for row in await self._rows(session, shipment_key):
                if row.status != "SHIPPED":
                    continue
                row.status = "DELIVERED"
                row.updated_at = now
                await self._set_release(session, row, "DELIVERED")

    async def cancel(self, shipment_key: str, work_order_id: str, line_ids: list[str]) -> None:
        """Stop work on these lines (not shipped yet); the work order closes with its last."""
        now = utcnow()
        async with self.db.transaction() as session:
            rows = await self._rows(session, shipment_key)
            for row in rows:
                if row.line_id not in line_ids or row.status not in ("OPEN", "PICKED"):
                    continue
                row.status = "CANCELLED"
                row.updated_at = now
                await self._set_release(session, row, "CANCELLED")
            if all(row.status in ("CANCELLED", "BACKORDERED") for row in rows):
                await session.execute(
                    update(WorkOrder)
                    .where(WorkOrder.work_order_id == work_order_id)
                    .values(status="CANCELLED")
                )

    async def shipment(self, shipment_key: str) -> ShipmentRecord | None:
        async with self.db.sessions() as session:
            rows = await self._rows(session, shipment_key)
            return _record(rows) if rows else None

    async def open_shipments(self, location_id: str) -> list[ShipmentRecord]:
        """What a location has to work on: released shipments not yet delivered."""
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Shipment)
                .where(
                    Shipment.location_id == location_id,
                    Shipment.status.in_(["OPEN", "PICKED", "SHIPPED"]),
                )
                .order_by(Shipment.updated_at, Shipment.shipment_key, Shipment.line_id)
            )
            grouped: dict[str, list[Shipment]] = {}
            for row in result.scalars():
                grouped.setdefault(row.shipment_key, []).append(row)
            return [_record(rows) for rows in grouped.values()]

    async def backlog_by_location(self) -> dict[str, int]:
        """Units released to each location and not shipped yet: its open work."""
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Shipment.location_id, func.sum(Shipment.released_quantity))
                .where(Shipment.status.in_(["OPEN", "PICKED"]))
                .group_by(Shipment.location_id)
            )
            return {loc: int(total or 0) for loc, total in result.all()}

    async def releases(self, order_id: str) -> list[ReleaseRow]:
        async with self.db.sessions() as session:
            result = await session.execute(
                select(OrderRelease)
                .where(OrderRelease.order_id == order_id)
                .order_by(OrderRelease.created_at, OrderRelease.release_key, OrderRelease.line_id)
            )
            return [
                ReleaseRow(
                    r.release_key,
                    r.line_id,
                    r.location_id,
                    r.quantity,
                    r.status,
                    r.status_quantity,
                    r.created_at,
                )
                for r in result.scalars()
            ]

    async def shipments(self, order_id: str) -> list[ShipmentRecord]:
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Shipment)
                .where(Shipment.order_id == order_id)
                .order_by(Shipment.updated_at, Shipment.shipment_key, Shipment.line_id)
            )
            grouped: dict[str, list[Shipment]] = {}
            for row in result.scalars():
                grouped.setdefault(row.shipment_key, []).append(row)
            return [_record(rows) for rows in grouped.values()]

    @staticmethod
    async def _rows(session: object, shipment_key: str) -> list[Shipment]:
        result = await session.execute(  # type: ignore[attr-defined]
            select(Shipment).where(Shipment.shipment_key == shipment_key).order_by(Shipment.line_id)
        )
        return list(result.scalars())

    @staticmethod
    async def _set_release(session: object, row: Shipment, status: str) -> None:
        await session.execute(  # type: ignore[attr-defined]
            update(OrderRelease)
            .where(OrderRelease.release_key == row.release_key, OrderRelease.line_id == row.line_id)
            .values(status=status)
        )


def _record(rows: list[Shipment]) -> ShipmentRecord:
    first = rows[0]
    return ShipmentRecord(
        shipment_key=first.shipment_key,
        release_key=first.release_key,
        order_id=first.order_id,
        location_id=first.location_id,
        workflow_id=first.workflow_id,
        carrier=first.carrier,
        tracking_number=first.tracking_number,
        lines=[
            ShipmentLine(r.line_id, r.released_quantity, r.picked_quantity, r.quantity, r.status)
            for r in rows
        ],
    )
