"""Work orders, releases and shipments.

`order_releases` holds one row per (release_key, line); for each line exactly one row
has status_quantity = 1: its current release. A re-release (after a backorder) sets
the older rows of that line to 0 in the same transaction that writes the new one.
`shipments` holds one row per (shipment_key, line) with quantity 0 until it ships.

A location's work-order list (`work_orders`) has one entry per shipment: its work order
(release R{n}, shipment S{n} and work order WO{n} of an order share n), the work order's
status derived from its lines and the work_orders row, and every line, cancelled ones
included. A cancelled line's row is never written again, so its `updated_at` is the time
it was cancelled.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from store.database import Database, utcnow
from store.tables import OrderRelease, Shipment, WorkOrder


@dataclass
class ShipmentLine:
    line_id: str
    released_quantity: int
    picked_quantity: int
    quantity: int
    status: str
    # when the line was last written; for a CANCELLED line, when it was cancelled
    updated_at: datetime | None = None

    @property
    def cancelled_at(self) -> datetime | None:
        return self.updated_at if self.status == "CANCELLED" else None


# A work order's status is the least advanced of its lines' (OPEN before PICKED, ...);
# with nothing left to do it is CANCELLED when its lines were all cancelled or its
# work_orders row says so (a cancel closed it), else BACKORDERED (re-routed elsewhere).
# A pickup store's hand-over of a TRANSFER release (shipment S{n}-H, work order WO{n}-H)
# starts AWAITING_TRANSFER and is READY_FOR_PICKUP once the store has received the units.
OPEN_STATUSES = ("AWAITING_TRANSFER", "OPEN", "PICKED", "SHIPPED", "READY_FOR_PICKUP")
WORK_ORDER_STATUSES = (
    "AWAITING_TRANSFER",
    "OPEN",
    "PICKED",
    "SHIPPED",
    "READY_FOR_PICKUP",
    "DELIVERED",
    "RETURNED_TO_SENDER",
    "BACKORDERED",
    "CANCELLED",
)
_RANK = {status: rank for rank, status in enumerate(WORK_ORDER_STATUSES, start=1)}


def work_order_status(line_statuses: Collection[str], work_order_row_status: str | None) -> str:
    rank = min((_RANK.get(s, _RANK["CANCELLED"]) for s in line_statuses), default=0)
    if rank == 0:
        return "CANCELLED"  # no lines: nothing to do
    status = WORK_ORDER_STATUSES[rank - 1]
    if status == "BACKORDERED" and work_order_row_status == "CANCELLED":
        return "CANCELLED"
    return status


def work_order_id_of(order_id: str, shipment_key: str) -> str:
    """S{n} -> WO{n} (workflows/order_state.py shipment_key and work_order_id)."""
    return f"{order_id}-WO{shipment_key[len(order_id) + 2 :]}"


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
    # the status of its row in work_orders (SUBMITTED, SENT, RELEASED, CANCELLED) if read
    work_order_row_status: str | None = None
    released_at: datetime | None = None
    # PACKAGING, or TRANSFER (to destination_id: click and collect from another location)
    kind: str = "PACKAGING"
    destination_id: str | None = None

    @property
    def work_order_id(self) -> str:
        return work_order_id_of(self.order_id, self.shipment_key)

    @property
    def status(self) -> str:
        return work_order_status([line.status for line in self.lines], self.work_order_row_status)

    @property
    def cancelled_at(self) -> datetime | None:
        """When the work order was cancelled (its last line): None unless CANCELLED."""
        if self.status != "CANCELLED":
            return None
        times = [line.cancelled_at for line in self.lines if line.cancelled_at is not None]
        times = times or [line.updated_at for line in self.lines if line.updated_at is not None]
        return max(times, default=None)


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
        self,
        order_id: str,
        work_orders: list[tuple[str, str, list[str]]],
        kinds: dict[str, str] | None = None,
        destinations: dict[str, str] | None = None,
    ) -> None:
        """Work orders as SUBMITTED; `kinds`: work_order_id -> kind when not PACKAGING,
        `destinations`: work_order_id -> where a TRANSFER work order ships to."""
        kinds = kinds or {}
        destinations = destinations or {}

        def write(session: Session) -> None:
            for work_order_id, location_id, line_ids in work_orders:
                session.execute(
                    self.db.insert(WorkOrder)
                    .values(
                        work_order_id=work_order_id,
                        order_id=order_id,
                        location_id=location_id,
                        line_ids=line_ids,
                        status="SUBMITTED",
                        created_at=utcnow(),
                        kind=kinds.get(work_order_id),
                        destination_id=destinations.get(work_order_id),
                    )
                    .on_conflict_do_nothing(index_elements=["work_order_id"])
                )

        await self.db.write(write)

    async def work_order_status(self, work_order_id: str) -> str | None:
        async with self.db.sessions() as session:
            row = await session.get(WorkOrder, work_order_id)
            return row.status if row else None

    async def mark_work_order_sent(self, work_order_id: str) -> str | None:
        """SUBMITTED -> SENT once its webhook took it; returns the status after (CANCELLED
        when a cancel overtook the sending, so the caller tells the location)."""

        def write(session: Session) -> str | None:
            session.execute(
                update(WorkOrder)
                .where(WorkOrder.work_order_id == work_order_id, WorkOrder.status == "SUBMITTED")
                .values(status="SENT")
            )
            row = session.get(WorkOrder, work_order_id, populate_existing=True)
            return row.status if row else None

        return await self.db.write(write)

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
        handover: tuple[str, str] | None = None,
    ) -> bool:
        """Write the release and its empty shipment; False when already written. A
        TRANSFER release also writes `handover` (shipment key, pickup store): the store's
        hand-over rows, AWAITING_TRANSFER until the units arrive."""
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
                if handover is not None:
                    session.add(
                        Shipment(
                            shipment_key=handover[0],
                            line_id=line_id,
                            release_key=release_key,
                            order_id=order_id,
                            location_id=handover[1],
                            workflow_id=workflow_id,
                            released_quantity=qty,
                            picked_quantity=0,
                            quantity=0,
                            status="AWAITING_TRANSFER",
                            updated_at=at,
                        )
                    )
            ids = [work_order_id]
            if handover is not None:
                ids.append(work_order_id_of(order_id, handover[0]))
            await session.execute(
                update(WorkOrder).where(WorkOrder.work_order_id.in_(ids)).values(status="RELEASED")
            )
            return True

    async def record_pick(
        self, shipment_key: str, picked: dict[str, int], handover: str | None = None
    ) -> dict[str, int]:
        """A location's pick; lines of a TRANSFER release found missing are backordered
        at the pickup store's hand-over (`handover`) too. The first pick of a line counts:
        returns the picked quantities the store holds for the lines of `picked` (this
        pick's, or an earlier one's)."""
        now = utcnow()

        def write(session: Session) -> dict[str, int]:
            rows = self._rows_now(session, shipment_key)
            held: dict[str, int] = {}
            for row in rows:
                if row.line_id not in picked:
                    continue
                if row.status == "OPEN":
                    qty = picked[row.line_id]
                    row.picked_quantity = qty
                    row.status = "PICKED" if qty > 0 else "BACKORDERED"
                    row.updated_at = now
                    self._set_release_now(session, row, "PICKED" if qty > 0 else "BACKORDERED")
                if row.status != "CANCELLED" and row.picked_quantity is not None:
                    held[row.line_id] = row.picked_quantity
            if handover is not None:
                for row in self._rows_now(session, handover):
                    if row.status == "AWAITING_TRANSFER" and picked.get(row.line_id, 1) == 0:
                        row.status = "BACKORDERED"
                        row.updated_at = now
            return held

        return await self.db.write(write)

    async def record_transfer_receipt(self, shipment_key: str, handover: str) -> None:
        """The pickup store received a TRANSFER release's units: the transfer is
        delivered, the store's hand-over READY_FOR_PICKUP with the units shipped."""
        now = utcnow()

        def write(session: Session) -> None:
            shipped = {}
            for row in self._rows_now(session, shipment_key):
                if row.status == "SHIPPED":
                    row.status = "DELIVERED"
                    row.updated_at = now
                    shipped[row.line_id] = row.quantity
            for row in self._rows_now(session, handover):
                if row.status == "AWAITING_TRANSFER" and row.line_id in shipped:
                    row.status = "READY_FOR_PICKUP"
                    row.picked_quantity = shipped[row.line_id]
                    row.quantity = shipped[row.line_id]
                    row.updated_at = now

        await self.db.write(write)

    async def record_ship(self, shipment_key: str, carrier: str, tracking_number: str) -> None:
        now = utcnow()

        def write(session: Session) -> None:
            for row in self._rows_now(session, shipment_key):
                if row.status != "PICKED":
                    continue
                row.quantity = row.picked_quantity
                row.status = "SHIPPED"
                row.carrier = carrier
                row.tracking_number = tracking_number
                row.updated_at = now
                self._set_release_now(session, row, "SHIPPED")

        await self.db.write(write)

    async def record_delivery(self, shipment_key: str) -> None:
        """Delivered to the customer: a shipment, or a pickup store's hand-over."""
        now = utcnow()

        def write(session: Session) -> None:
            for row in self._rows_now(session, shipment_key):
                if row.status not in ("SHIPPED", "READY_FOR_PICKUP"):
                    continue
                row.status = "DELIVERED"
                row.updated_at = now
                self._set_release_now(session, row, "DELIVERED")

        await self.db.write(write)

    async def record_returned_to_sender(self, shipment_key: str) -> None:
        """The carrier brings the shipped units back: the shipment will not be delivered."""
        now = utcnow()

        def write(session: Session) -> None:
            for row in self._rows_now(session, shipment_key):
                if row.status != "SHIPPED":
                    continue
                row.status = "RETURNED_TO_SENDER"
                row.updated_at = now
                self._set_release_now(session, row, "RETURNED_TO_SENDER")

        await self.db.write(write)

    async def cancel(
        self,
        shipment_key: str,
        work_order_id: str,
        line_ids: list[str],
        handover: str | None = None,
    ) -> None:
        """Stop work on these lines (not shipped yet); the work order closes with its last.
        A TRANSFER release's lines are cancelled at the pickup store (`handover`) too."""
        now = utcnow()
        async with self.db.transaction() as session:
            if handover is not None:
                for row in await self._rows(session, handover):
                    if row.line_id in line_ids and row.status == "AWAITING_TRANSFER":
                        row.status = "CANCELLED"
                        row.updated_at = now
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
        def read(session: Session) -> ShipmentRecord | None:
            rows = self._rows_now(session, shipment_key)
            if not rows:
                return None
            record = _record(rows)
            work_order = session.get(WorkOrder, record.work_order_id)
            record.work_order_row_status = work_order.status if work_order else None
            if work_order is not None and work_order.kind == "TRANSFER":
                record.kind = "TRANSFER"
                record.destination_id = work_order.destination_id
            record.released_at = session.execute(
                select(func.min(OrderRelease.created_at)).where(
                    OrderRelease.release_key == record.release_key
                )
            ).scalar_one()
            return record

        return await self.db.read(read)

    async def work_orders(
        self,
        location_id: str,
        *,
        statuses: Collection[str] | None = None,
        cancelled_since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        kind: str | None = None,
    ) -> tuple[list[ShipmentRecord], int]:
        """A location's work orders (of `kind`, PACKAGING or TRANSFER, when given), newest
        release first, with all their lines; and how many match. `statuses` (of
        WORK_ORDER_STATUSES) selects those in these statuses; None selects the open ones
        and those cancelled at or after `cancelled_since`."""
        since = cancelled_since or utcnow()
        # the shipments that can match, from their rows (a superset: the statuses below
        # decide): an entry has a row in its own status, a CANCELLED one a CANCELLED row
        # or (closed by a cancel after its lines were backordered) BACKORDERED rows
        row = aliased(Shipment)
        if statuses is None:
            candidate: ColumnElement[bool] = or_(
                row.status.in_(OPEN_STATUSES),
                and_(row.status.in_(["CANCELLED", "BACKORDERED"]), row.updated_at >= since),
            )
        else:
            wanted = set(statuses) | ({"BACKORDERED"} if "CANCELLED" in statuses else set())
            candidate = row.status.in_(sorted(wanted))
        candidates = select(row.shipment_key).where(row.location_id == location_id, candidate)

        rank = case(_RANK, value=Shipment.status, else_=_RANK["CANCELLED"])
        per_shipment = (
            select(
                Shipment.shipment_key,
                Shipment.order_id,
                func.min(rank).label("rank"),
                func.max(
                    case((Shipment.status == "CANCELLED", Shipment.updated_at), else_=None)
                ).label("last_cancel"),
                func.max(Shipment.updated_at).label("last_update"),
                func.coalesce(
                    func.min(OrderRelease.created_at), func.min(Shipment.updated_at)
                ).label("released_at"),
            )
            .outerjoin(
                OrderRelease,
                and_(
                    OrderRelease.release_key == Shipment.release_key,
                    OrderRelease.line_id == Shipment.line_id,
                ),
            )
            .where(Shipment.location_id == location_id, Shipment.shipment_key.in_(candidates))
            .group_by(Shipment.shipment_key, Shipment.order_id)
            .subquery()
        )
        # WO{n} of the shipment S{n}: the order id, "-WO", then what follows "<order>-S"
        wo_id = (
            per_shipment.c.order_id
            + "-WO"
            + func.substr(per_shipment.c.shipment_key, func.length(per_shipment.c.order_id) + 3)
        )
        ranked = [
            (per_shipment.c.rank == _RANK[s], s)
            for s in (
                "AWAITING_TRANSFER",
                "OPEN",
                "PICKED",
                "SHIPPED",
                "READY_FOR_PICKUP",
                "DELIVERED",
                "RETURNED_TO_SENDER",
            )
        ]
        status = case(
            *ranked,
            (
                and_(
                    per_shipment.c.rank == _RANK["BACKORDERED"],
                    func.coalesce(WorkOrder.status, "") != "CANCELLED",
                ),
                "BACKORDERED",
            ),
            else_="CANCELLED",
        )
        entries = (
            select(
                per_shipment.c.shipment_key,
                per_shipment.c.released_at,
                WorkOrder.status.label("row_status"),
                WorkOrder.kind.label("kind"),
                WorkOrder.destination_id.label("destination_id"),
                status.label("status"),
                func.coalesce(per_shipment.c.last_cancel, per_shipment.c.last_update).label(
                    "cancel_time"
                ),
            )
            .select_from(per_shipment)
            .outerjoin(WorkOrder, WorkOrder.work_order_id == wo_id)
            .subquery()
        )
        if statuses is None:
            matches = or_(
                entries.c.status.in_(OPEN_STATUSES),
                and_(entries.c.status == "CANCELLED", entries.c.cancel_time >= since),
            )
        else:
            matches = entries.c.status.in_(sorted(statuses))
        if kind is not None:
            matches = and_(matches, func.coalesce(entries.c.kind, "PACKAGING") == kind)
        listing = (
            select(
                entries.c.shipment_key,
                entries.c.released_at,
                entries.c.row_status,
                entries.c.kind,
                entries.c.destination_id,
            )
            .where(matches)
            .order_by(entries.c.released_at.desc(), entries.c.shipment_key.desc())
            .limit(limit)
            .offset(offset)
        )

        def read(session: Session) -> tuple[int, list[Any], dict[str, list[Shipment]]]:
            # one trip to a reader thread on SQLite (Database.read): locations poll this
            total = session.execute(select(func.count()).select_from(entries).where(matches))
            count = total.scalar_one()
            page = list(session.execute(listing).all())
            keys = [row.shipment_key for row in page]
            grouped: dict[str, list[Shipment]] = {key: [] for key in keys}
            if keys:
                result = session.execute(
                    select(Shipment)
                    .where(Shipment.shipment_key.in_(keys))
                    .order_by(Shipment.shipment_key, Shipment.line_id)
                )
                for shipment_row in result.scalars():
                    grouped[shipment_row.shipment_key].append(shipment_row)
            return int(count), page, grouped

        total, page, grouped = await self.db.read(read)
        records: list[ShipmentRecord] = []
        for entry in page:
            record = _record(grouped[entry.shipment_key])
            record.work_order_row_status = entry.row_status
            record.released_at = entry.released_at
            if entry.kind == "TRANSFER":
                record.kind = "TRANSFER"
                record.destination_id = entry.destination_id
            records.append(record)
        return records, total

    async def open_shipments(self, location_id: str) -> list[ShipmentRecord]:
        """What a location has to work on: released shipments not yet delivered."""
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Shipment)
                .where(
                    Shipment.location_id == location_id,
                    Shipment.status.in_(list(OPEN_STATUSES)),
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
    def _rows_now(session: Session, shipment_key: str) -> list[Shipment]:
        result = session.execute(
            select(Shipment).where(Shipment.shipment_key == shipment_key).order_by(Shipment.line_id)
        )
        return list(result.scalars())

    @staticmethod
    def _set_release_now(session: Session, row: Shipment, status: str) -> None:
        session.execute(
            update(OrderRelease)
            .where(OrderRelease.release_key == row.release_key, OrderRelease.line_id == row.line_id)
            .values(status=status)
        )

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
            ShipmentLine(
                r.line_id,
                r.released_quantity,
                r.picked_quantity,
                r.quantity,
                r.status,
                r.updated_at,
            )
            for r in rows
        ],
    )
