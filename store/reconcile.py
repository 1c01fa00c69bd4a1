"""Queries of the reservation reconciliation: reservations still holding stock, the
releases they belong to, and the order events the reconciler writes.

Read-only towards inventory: reservations are released through
`InventoryRepository.release` (guarded and idempotent), shipments and work orders
are cancelled through `FulfillmentRepository.cancel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from store.database import Database
from store.inventory import ReservationRow
from store.tables import Order, OrderEvent, Reservation, Shipment, WorkOrder

# Reservation states that still hold units in `inventory.reserved`. A pick that found
# nothing leaves its reservation PICKED with quantity 0 (store/inventory.py record_pick),
# also on orders that went on normally: those hold nothing and are not looked at.
HOLDING = ("ACTIVE", "PICKED")

# Events written outside the order workflow get sequence numbers from this value up.
# The workflow numbers its own events 1, 2, 3, ... and its projection inserts them
# with ON CONFLICT (order_id, seq) DO NOTHING: an event of ours at the workflow's next
# number would silently swallow the workflow's event once it runs again (after a
# reset, say). Numbers in a band of their own can never meet the workflow's, and they
# still sort after everything the workflow wrote before us.
EXTERNAL_EVENT_SEQ_BASE = 1_000_000_000
MAX_EVENT_DETAIL = 4000


@dataclass(frozen=True)
class OrderCursor:
    """Keyset position in the oldest-first list of orders holding stock."""

    first_reserved_at: datetime
    order_id: str


@dataclass
class HoldingOrder:
    """An order with reservations that still hold units, oldest reservation first."""

    order_id: str
    workflow_id: str
    first_reserved_at: datetime
    reservations: list[ReservationRow] = field(default_factory=list)

    @property
    def cursor(self) -> OrderCursor:
        return OrderCursor(self.first_reserved_at, self.order_id)


@dataclass(frozen=True)
class OpenShipmentLine:
    """One line of a shipment not shipped yet (OPEN or PICKED)."""

    shipment_key: str
    release_key: str
    line_id: str
    location_id: str
    workflow_id: str


@dataclass(frozen=True)
class SubmittedWorkOrder:
    """A work order handed to a location whose release has not been written yet."""

    work_order_id: str
    location_id: str
    line_ids: list[str]


class ReconcileRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def holding_orders(
        self, *, after: OrderCursor | None = None, limit: int = 500
    ) -> list[HoldingOrder]:
        """Up to `limit` orders holding stock (ACTIVE or PICKED reservations), ordered by
        their oldest such reservation, starting after `after`."""
        first = func.min(Reservation.created_at)
        query = (
            select(Reservation.order_id, first)
            .where(Reservation.status.in_(HOLDING), Reservation.quantity > 0)
            .group_by(Reservation.order_id)
        )
        if after is not None:
            query = query.having(
                or_(
                    first > after.first_reserved_at,
                    and_(first == after.first_reserved_at, Reservation.order_id > after.order_id),
                )
            )
        query = query.order_by(first, Reservation.order_id).limit(limit)
        async with self.db.sessions() as session:
            page = [(order_id, at) for order_id, at in (await session.execute(query)).all()]
            if not page:
                return []
            ids = [order_id for order_id, _ in page]
            workflow_ids = dict(
                (
                    await session.execute(
                        select(Order.order_id, Order.workflow_id).where(Order.order_id.in_(ids))
                    )
                ).all()
            )
            rows = await session.execute(
                select(Reservation)
                .where(
                    Reservation.order_id.in_(ids),
                    Reservation.status.in_(HOLDING),
                    Reservation.quantity > 0,
                )
                .order_by(Reservation.created_at, Reservation.reservation_id)
            )
            orders = {
                order_id: HoldingOrder(
                    order_id, workflow_ids.get(order_id) or f"order-{order_id}", at
                )
                for order_id, at in page
            }
            for r in rows.scalars():
                orders[r.order_id].reservations.append(
                    ReservationRow(
                        r.reservation_id,
                        r.order_id,
                        r.line_id,
                        r.location_id,
                        r.sku,
                        r.quantity,
                        r.status,
                    )
                )
            return list(orders.values())

    async def open_shipment_lines(self, order_id: str) -> list[OpenShipmentLine]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Shipment)
                .where(Shipment.order_id == order_id, Shipment.status.in_(["OPEN", "PICKED"]))
                .order_by(Shipment.shipment_key, Shipment.line_id)
            )
            return [
                OpenShipmentLine(
                    r.shipment_key, r.release_key, r.line_id, r.location_id, r.workflow_id
                )
                for r in rows.scalars()
            ]

    async def submitted_work_orders(self, order_id: str) -> list[SubmittedWorkOrder]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(WorkOrder)
                .where(WorkOrder.order_id == order_id, WorkOrder.status == "SUBMITTED")
                .order_by(WorkOrder.work_order_id)
            )
            return [
                SubmittedWorkOrder(r.work_order_id, r.location_id, [str(x) for x in r.line_ids])
                for r in rows.scalars()
            ]

    async def append_event(self, order_id: str, at: datetime, kind: str, detail: str) -> bool:
        """Add one event to the order's audit trail, numbered after the other external
        events (see EXTERNAL_EVENT_SEQ_BASE). An event of the same type and detail that
        is already there is not written again. True when written."""
        detail = detail[:MAX_EVENT_DETAIL]
        for _ in range(10):
            async with self.db.transaction() as session:
                same = await session.execute(
                    select(OrderEvent.seq)
                    .where(
                        OrderEvent.order_id == order_id,
                        OrderEvent.seq >= EXTERNAL_EVENT_SEQ_BASE,
                        OrderEvent.type == kind,
                        OrderEvent.detail == detail,
                    )
                    .limit(1)
                )
                if same.first() is not None:
                    return False
                top = (
                    await session.execute(
                        select(func.max(OrderEvent.seq)).where(
                            OrderEvent.order_id == order_id,
                            OrderEvent.seq >= EXTERNAL_EVENT_SEQ_BASE,
                        )
                    )
                ).scalar()
                seq = EXTERNAL_EVENT_SEQ_BASE if top is None else int(top) + 1
                inserted = await session.execute(
                    self.db.insert(OrderEvent)
                    .values(order_id=order_id, seq=seq, at=at, type=kind, detail=detail)
                    .on_conflict_do_nothing(index_elements=["order_id", "seq"])
                )
                if inserted.rowcount == 1:  # type: ignore[attr-defined]
                    return True
            # a concurrent writer took this number (PostgreSQL, read committed): the
            # next transaction sees its row and numbers after it
        raise RuntimeError(f"order {order_id}: no free event number after 10 tries")
